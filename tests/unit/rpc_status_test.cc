#include <catch2/catch.hpp>

#include "absl/strings/cord.h"
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

TEST_CASE("what an error means survives gRPC in its payloads, whatever its wording", "[rpc]") {
  absl::Status s = rpc::InvalidField("spec.run.port", "must be 1-65535");
  s.SetPayload("type.example/other", absl::Cord(std::string("a\0b", 3)));
  absl::Status back = rpc::FromGrpc(rpc::ToGrpc(s));
  CHECK(back == s);
  CHECK(rpc::ErrorField(back) == "spec.run.port");
  // Reworded, it still names its field; a plain InvalidArgument names none,
  // even when its text looks like a field error.
  absl::Status reworded(absl::StatusCode::kInvalidArgument, "the port is out of range");
  reworded.SetPayload("type.c2d.dev/field", absl::Cord("spec.run.port"));
  CHECK(rpc::ErrorField(rpc::FromGrpc(rpc::ToGrpc(reworded))) == "spec.run.port");
  CHECK_FALSE(rpc::ErrorField(absl::InvalidArgumentError("spec.run.port: bad")).has_value());
  // Details that are not ours are ignored.
  grpc::Status foreign(grpc::StatusCode::INVALID_ARGUMENT, "x", "\xff\xff not a proto");
  CHECK(rpc::FromGrpc(foreign) == absl::InvalidArgumentError("x"));
}

}  // namespace
}  // namespace c2d
