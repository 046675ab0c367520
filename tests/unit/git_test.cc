#include "services/builder/git.h"

#include <catch2/catch.hpp>

#include "libs/rpc/validate.h"

namespace c2d {
namespace {

TEST_CASE("credentials in repository URLs never show", "[git]") {
  using builder::RedactUrl;
  CHECK(RedactUrl("https://x-access-token:ghp_abc@github.com/o/r.git") ==
        "https://***@github.com/o/r.git");
  CHECK(RedactUrl("https://user@gitlab.com/o/r") == "https://***@gitlab.com/o/r");
  CHECK(RedactUrl("https://github.com/o/r.git") == "https://github.com/o/r.git");
  // An @ in the path is not userinfo.
  CHECK(RedactUrl("https://host/o/r@v2") == "https://host/o/r@v2");
  CHECK(RedactUrl("/srv/git/app") == "/srv/git/app");
}

TEST_CASE("commit ids are full lower-case hex object names", "[git]") {
  CHECK(rpc::IsCommitSha(std::string(40, 'a')));
  CHECK(rpc::IsCommitSha(std::string(64, '0')));
  CHECK_FALSE(rpc::IsCommitSha(std::string(39, 'a')));
  CHECK_FALSE(rpc::IsCommitSha(std::string(40, 'A')));
  CHECK_FALSE(rpc::IsCommitSha("main"));
}

}  // namespace
}  // namespace c2d
