"""Protocol Buffers + gRPC through Debian's protoc and grpc_cpp_plugin (no rules_proto offline)."""

def xc_grpc_proto(name, srcs, deps = [], grpc = True):
    """Compiles srcs (paths relative to this package) into a cc_library `name`.

    Every proto imports others by workspace-relative path, e.g. "proto/xmpp/stanza/v1/stanza.proto".
    """
    pkg = native.package_name()
    outs = []
    hdrs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.h", base + ".pb.cc"]
        hdrs.append(base + ".pb.h")
        if grpc:
            outs += [base + ".grpc.pb.h", base + ".grpc.pb.cc"]
            hdrs.append(base + ".grpc.pb.h")
    plugin = "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin --grpc_out=$(GENDIR)" if grpc else ""
    native.genrule(
        name = name + "_gen",
        srcs = srcs + [d + "_srcs" for d in deps],
        outs = outs,
        cmd = " ".join([
            "/usr/bin/protoc -I. --cpp_out=$(GENDIR)",
            plugin,
        ] + [pkg + "/" + s for s in srcs]),
    )
    native.filegroup(name = name + "_srcs", srcs = srcs, visibility = ["//visibility:public"])
    native.cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = hdrs,
        deps = deps + ["//third_party:grpc", "//third_party:protobuf"],
        visibility = ["//visibility:public"],
    )
