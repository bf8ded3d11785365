"""Project macros: every BUILD file names only name/srcs/hdrs/deps (see docs/design.md)."""

_COPTS = ["-Werror=return-type", "-Wno-missing-field-initializers"]

def xc_cc_library(name, srcs = [], hdrs = [], deps = [], **kwargs):
    native.cc_library(
        name = name,
        srcs = srcs,
        hdrs = hdrs,
        deps = deps,
        copts = _COPTS + kwargs.pop("copts", []),
        visibility = kwargs.pop("visibility", ["//visibility:public"]),
        **kwargs
    )

def xc_cc_binary(name, srcs = [], deps = [], **kwargs):
    """A binary; links jemalloc (//core/base:allocator_lib) unless allocator = "system".

    Optimised builds are fully static, libc included (see third_party/BUILD.bazel).
    """
    allocator = [] if kwargs.pop("allocator", "") == "system" else ["//core/base:allocator_lib"]
    native.cc_binary(
        name = name,
        srcs = srcs,
        deps = deps + allocator,
        linkopts = select({
            "//third_party:static_link": ["-static"],
            "//conditions:default": [],
        }) + kwargs.pop("linkopts", []),
        copts = _COPTS + kwargs.pop("copts", []),
        visibility = kwargs.pop("visibility", ["//visibility:public"]),
        **kwargs
    )

def xc_cc_test(name, srcs = [], deps = [], **kwargs):
    """A GoogleTest test; links gtest_main unless the test brings its own main."""
    main = [] if kwargs.pop("own_main", False) else ["//third_party:gtest_main"]
    native.cc_test(
        name = name,
        srcs = srcs,
        deps = deps + main + ["//third_party:gtest"],
        copts = _COPTS + kwargs.pop("copts", []),
        size = kwargs.pop("size", "small"),
        **kwargs
    )
