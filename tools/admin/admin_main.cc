// xc-admin: account administration against a running cluster's Redis.
//
//   xc-admin [--redis host:port] user add JID PASSWORD
//   xc-admin [--redis host:port] user del JID
//   xc-admin [--redis host:port] user list DOMAIN
//   xc-admin [--redis host:port] user add-many PREFIX COUNT DOMAIN PASSWORD   (PREFIX1..PREFIXn)
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "core/jid/jid.h"
#include "core/redis/hiredis_client.h"
#include "core/store/account_store.h"

ABSL_FLAG(std::string, redis, "127.0.0.1:6379", "Redis address host:port");
ABSL_FLAG(std::string, redis_password, "", "Redis AUTH password (or env XC_REDIS_PASSWORD)");
ABSL_FLAG(int, iterations, 4096, "SCRAM iteration count for new passwords (at least 4096)");

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: xc-admin [--redis host:port] user add JID PASSWORD\n"
               "       xc-admin [--redis host:port] user del JID\n"
               "       xc-admin [--redis host:port] user list DOMAIN\n"
               "       xc-admin [--redis host:port] user add-many PREFIX COUNT DOMAIN PASSWORD\n");
  return 2;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "xc-admin: %s\n", what.c_str());
  return 1;
}

absl::StatusOr<xc::Jid> UserJid(const std::string& text) {
  absl::StatusOr<xc::Jid> jid = xc::Jid::Parse(text);
  if (!jid.ok()) return jid.status();
  if (jid->local().empty() || jid->is_full()) {
    return absl::InvalidArgumentError("a user is a bare JID with a localpart (user@domain)");
  }
  return jid;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() < 3 || std::string(args[1]) != "user") return Usage();
  const std::string verb = args[2];
  absl::StatusOr<xc::RedisConnectionOptions> options =
      xc::ParseRedisAddress(absl::GetFlag(FLAGS_redis));
  if (!options.ok()) return Fail(std::string(options.status().message()));
  options->password = absl::GetFlag(FLAGS_redis_password);
  if (const char* env = std::getenv("XC_REDIS_PASSWORD"); env && options->password.empty()) {
    options->password = env;
  }
  std::unique_ptr<xc::RedisClient> redis = xc::NewHiredisClient(*options);
  xc::AccountStore accounts(redis.get());

  if (verb == "add" && args.size() == 5) {
    absl::StatusOr<xc::Jid> jid = UserJid(args[3]);
    if (!jid.ok()) return Fail(std::string("invalid JID '") + args[3] + "': " +
                               std::string(jid.status().message()));
    std::string password = args[4];
    if (password.empty()) return Fail("the password is empty");
    if (absl::GetFlag(FLAGS_iterations) < 4096) return Fail("--iterations must be at least 4096");
    absl::Status s = accounts.Put(*jid, password, absl::GetFlag(FLAGS_iterations));
    if (!s.ok()) return Fail("cannot store the account: " + std::string(s.message()));
    std::printf("added %s\n", jid->ToString().c_str());
    return 0;
  }
  if (verb == "del" && args.size() == 4) {
    absl::StatusOr<xc::Jid> jid = UserJid(args[3]);
    if (!jid.ok()) return Fail(std::string("invalid JID '") + args[3] + "'");
    absl::Status s = accounts.Delete(*jid);
    if (absl::IsNotFound(s)) return Fail("no such user: " + jid->ToString());
    if (!s.ok()) return Fail("cannot delete: " + std::string(s.message()));
    std::printf("deleted %s\n", jid->ToString().c_str());
    return 0;
  }
  if (verb == "add-many" && args.size() == 7) {
    int count = std::atoi(args[4]);
    if (count <= 0) return Fail("COUNT must be a positive number");
    for (int i = 1; i <= count; ++i) {
      absl::StatusOr<xc::Jid> jid = UserJid(std::string(args[3]) + std::to_string(i) + "@" + args[5]);
      if (!jid.ok()) return Fail("invalid JID from PREFIX/DOMAIN");
      absl::Status s = accounts.Put(*jid, args[6], absl::GetFlag(FLAGS_iterations));
      if (!s.ok()) return Fail("cannot store the account: " + std::string(s.message()));
    }
    std::printf("added %d users\n", count);
    return 0;
  }
  if (verb == "list" && args.size() == 4) {
    absl::StatusOr<std::string> domain = xc::PrepareDomainpart(args[3]);
    if (!domain.ok()) return Fail(std::string("invalid domain '") + args[3] + "'");
    absl::StatusOr<std::vector<std::string>> users = accounts.List(*domain);
    if (!users.ok()) return Fail("cannot list: " + std::string(users.status().message()));
    for (const std::string& u : *users) std::printf("%s\n", u.c_str());
    return 0;
  }
  return Usage();
}
