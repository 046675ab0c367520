#include <catch2/catch.hpp>

#include "libs/rpc/status.h"

namespace c2d {
namespace {

TEST_CASE("status codes and messages map one-to-one between absl and gRPC", "[rpc]") {
  for (int code = 0; code <= 16; ++code) {
    absl::Status s(static_cast<absl::StatusCode>(code), code == 0 ? "" : "why");
    grpc::Status g = rpc::ToGrpc(s);
    CHECK(static_cast<int>(g.error_code()) == code);
    CHECK(rpc::FromGrpc(g) == s);
  }
  CHECK(rpc::ToGrpc(absl::NotFoundError("no build bld_1")).error_message() == "no build bld_1");
}

}  // namespace
}  // namespace c2d
