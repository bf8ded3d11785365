// xc-admin: account administration against a running cluster's Redis.
//
//   xc-admin [--redis host:port] user add JID PASSWORD
//   xc-admin [--redis host:port] user del JID
//   xc-admin [--redis host:port] user list DOMAIN
//   xc-admin [--redis host:port] user add-many PREFIX COUNT DOMAIN PASSWORD   (PREFIX1..PREFIXn)
//   xc-admin [--roster host:port] roster list USER
//   xc-admin [--roster host:port] roster set USER CONTACT [NAME [GROUP...]]
//   xc-admin [--roster host:port] roster remove USER CONTACT
//   xc-admin [--roster host:port] [--redis host:port] roster check USER|DOMAIN [--repair]
// Roster commands go through the roster service, so the user's live sessions get roster pushes.
// `roster check` reports (exit status 3) subscriptions whose two sides disagree; with --repair
// it heals them (exit status 0 when everything found was repaired).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "core/grpc/grpc_util.h"
#include "core/jid/jid.h"
#include "core/xml/xml_fragment.h"
#include "core/xml/xml_serializer.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/xmpp/roster/v1/roster.grpc.pb.h"
#include "core/redis/hiredis_client.h"
#include "core/redis/redis_cluster_client.h"
#include "core/store/account_store.h"

ABSL_FLAG(std::string, redis, "127.0.0.1:6379", "Redis address host:port");
ABSL_FLAG(std::string, redis_password, "",
          "Redis AUTH password (or env XC_REDIS_PASSWORD; ACL user from env XC_REDIS_USER)");
ABSL_FLAG(std::string, roster, "127.0.0.1:7101", "roster service gRPC address");
ABSL_FLAG(bool, repair, false, "roster check: repair what it finds");
ABSL_FLAG(int, iterations, 4096, "SCRAM iteration count for new passwords (at least 4096)");

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: xc-admin [--redis host:port] user add JID PASSWORD\n"
               "       xc-admin [--redis host:port] user del JID\n"
               "       xc-admin [--redis host:port] user list DOMAIN\n"
               "       xc-admin [--redis host:port] user add-many PREFIX COUNT DOMAIN PASSWORD\n"
               "       xc-admin [--roster host:port] roster list USER\n"
               "       xc-admin [--roster host:port] roster set USER CONTACT [NAME [GROUP...]]\n"
               "       xc-admin [--roster host:port] roster remove USER CONTACT\n"
               "       xc-admin [--roster host:port] roster check USER|DOMAIN [--repair]\n"
               "       xc-admin health HOST:PORT   (grpc.health.v1; exit 0 SERVING, 3 not)\n");
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

std::unique_ptr<xc::RedisClient> ConnectRedis(std::string* error) {
  xc::RedisConnectionOptions options;
  options.password = absl::GetFlag(FLAGS_redis_password);
  if (const char* env = std::getenv("XC_REDIS_PASSWORD"); env && options.password.empty()) {
    options.password = env;
  }
  if (const char* env = std::getenv("XC_REDIS_USER")) options.user = env;
  absl::StatusOr<std::unique_ptr<xc::RedisClient>> redis =
      xc::ConnectRedis(absl::GetFlag(FLAGS_redis), options);
  if (!redis.ok()) {
    *error = std::string(redis.status().message());
    return nullptr;
  }
  return *std::move(redis);
}

// roster check USER|DOMAIN: both sides of every subscription, through the roster service.
int RosterCheck(const std::string& target) {
  std::vector<std::string> users;
  if (target.find('@') != std::string::npos) {
    absl::StatusOr<xc::Jid> user = UserJid(target);
    if (!user.ok()) return Fail("invalid user JID '" + target + "'");
    users.push_back(user->BareString());
  } else {
    absl::StatusOr<std::string> domain = xc::PrepareDomainpart(target);
    if (!domain.ok()) return Fail("invalid domain '" + target + "'");
    std::string error;
    std::unique_ptr<xc::RedisClient> redis = ConnectRedis(&error);
    if (!redis) return Fail(error);
    absl::StatusOr<std::vector<std::string>> listed = xc::AccountStore(redis.get()).List(*domain);
    if (!listed.ok()) return Fail("cannot list users: " + std::string(listed.status().message()));
    users = *std::move(listed);
  }
  auto stub = xmpp::roster::v1::RosterService::NewStub(
      xc::NewServiceChannel(absl::GetFlag(FLAGS_roster)));
  int pairs = 0, found = 0, repaired = 0;
  for (const std::string& user : users) {
    xmpp::roster::v1::CheckRosterRequest request;
    request.set_user(user);
    request.set_repair(absl::GetFlag(FLAGS_repair));
    xmpp::roster::v1::CheckRosterResponse response;
    grpc::ClientContext ctx;
    xc::SetDeadline(&ctx, absl::Seconds(30));
    grpc::Status status = stub->CheckRoster(&ctx, request, &response);
    if (!status.ok()) return Fail("roster service, checking " + user + ": " + status.error_message());
    pairs += response.contacts_checked();
    for (const auto& f : response.findings()) {
      ++found;
      if (f.repaired()) ++repaired;
      std::printf("%s\t%s\t%s\t%s%s\n", f.user().c_str(), f.contact().c_str(),
                  f.problem().c_str(), f.repaired() ? "repaired: " : "repair with --repair: ",
                  f.repair().c_str());
    }
  }
  std::printf("checked %zu users, %d contacts: %d disagreements, %d repaired\n", users.size(),
              pairs, found, repaired);
  return found == repaired ? 0 : 3;
}

}  // namespace

int RosterCommand(const std::vector<char*>& args) {
  const std::string verb = args[2];
  if (args.size() < 4) return Usage();
  if (verb == "check") return args.size() == 4 ? RosterCheck(args[3]) : Usage();
  absl::StatusOr<xc::Jid> user = UserJid(args[3]);
  if (!user.ok()) return Fail(std::string("invalid user JID '") + args[3] + "'");
  std::string query;
  if (verb == "list" && args.size() == 4) {
    query = "<iq type='get' id='admin'><query xmlns='jabber:iq:roster'/></iq>";
  } else if ((verb == "set" && args.size() >= 5) || (verb == "remove" && args.size() == 5)) {
    absl::StatusOr<xc::Jid> contact = xc::Jid::Parse(args[4]);
    if (!contact.ok()) return Fail(std::string("invalid contact JID '") + args[4] + "'");
    query = absl::StrCat("<iq type='set' id='admin'><query xmlns='jabber:iq:roster'><item jid='",
                         xc::XmlEscapeAttribute(contact->ToString()), "'");
    if (verb == "remove") {
      absl::StrAppend(&query, " subscription='remove'/>");
    } else {
      if (args.size() >= 6) absl::StrAppend(&query, " name='", xc::XmlEscapeAttribute(args[5]), "'");
      absl::StrAppend(&query, ">");
      for (size_t i = 6; i < args.size(); ++i) {
        absl::StrAppend(&query, "<group>", xc::XmlEscapeText(args[i]), "</group>");
      }
      absl::StrAppend(&query, "</item>");
    }
    absl::StrAppend(&query, "</query></iq>");
  } else {
    return Usage();
  }
  absl::StatusOr<xc::XmlElement> iq = xc::ParseStanzaXml(query);
  if (!iq.ok()) return Fail("cannot build the request");
  iq->SetAttribute("from", user->ToString() + "/xc-admin");
  auto stub = xmpp::roster::v1::RosterService::NewStub(
      xc::NewServiceChannel(absl::GetFlag(FLAGS_roster)));
  xmpp::roster::v1::RosterIqRequest request;
  request.set_session_jid(user->ToString() + "/xc-admin");
  xc::ToStanzaProto(*iq, request.mutable_iq());
  xmpp::roster::v1::RosterIqResponse response;
  grpc::ClientContext ctx;
  xc::SetDeadline(&ctx, absl::Seconds(10));
  grpc::Status status = stub->HandleRosterIq(&ctx, request, &response);
  if (!status.ok()) return Fail("roster service: " + status.error_message());
  for (const auto& reply : response.replies()) {
    absl::StatusOr<xc::XmlElement> r = xc::FromStanzaProto(reply);
    if (!r.ok()) continue;
    if (r->Attribute("type") == "error") return Fail("refused: " + xc::SerializeXml(*r));
    if (const xc::XmlElement* q = r->FindChild("query", "jabber:iq:roster")) {
      for (const xc::XmlElement* item : q->Children("item")) {
        std::printf("%s\t%s%s\t%s\n", item->Attribute("jid").c_str(),
                    item->Attribute("subscription").c_str(),
                    item->Attribute("ask") == "subscribe" ? "+ask" : "",
                    item->Attribute("name").c_str());
      }
    }
  }
  if (verb != "list") std::printf("ok\n");
  return 0;
}

// health HOST:PORT: the gRPC health status of a roster service or router (SERVING while it
// can reach Redis and is not draining).
int HealthCommand(const std::string& target) {
  auto stub = grpc::health::v1::Health::NewStub(xc::NewServiceChannel(target));
  grpc::ClientContext context;
  xc::SetDeadline(&context, absl::Seconds(5));
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return Fail(absl::StrCat("health ", target, ": ", status.error_message()));
  std::printf("%s\n", grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
                          .c_str());
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 3;
}

int main(int argc, char** argv) {
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() == 3 && std::string(args[1]) == "health") return HealthCommand(args[2]);
  if (args.size() >= 3 && std::string(args[1]) == "roster") return RosterCommand(args);
  if (args.size() < 3 || std::string(args[1]) != "user") return Usage();
  const std::string verb = args[2];
  std::string error;
  std::unique_ptr<xc::RedisClient> redis = ConnectRedis(&error);
  if (!redis) return Fail(error);
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
