// Pull request payloads of both providers, as previews read them.

#include "services/gateway/webhook_payload.h"

#include <catch2/catch.hpp>

#include "libs/rpc/status.h"
#include "nlohmann/json.hpp"

namespace c2d::gateway {
namespace {

using nlohmann::json;
using A = PullRequest::Action;
const std::string kSha = "0123456789abcdef0123456789abcdef01234567";

json GitHub(const std::string& action, const std::string& head_repo = "o/r") {
  return {{"action", action},
          {"number", 7},
          {"pull_request",
           {{"head", {{"ref", "feature"}, {"sha", kSha}, {"repo", {{"full_name", head_repo}}}}},
            {"base", {{"ref", "main"}, {"repo", {{"full_name", "o/r"}}}}}}}};
}

json GitLab(const std::string& action, bool oldrev, int source_project = 5) {
  json attrs = {{"iid", 3},
                {"action", action},
                {"source_branch", "feature"},
                {"target_branch", "main"},
                {"source_project_id", source_project},
                {"target_project_id", 5},
                {"last_commit", {{"id", kSha}}}};
  if (oldrev) attrs["oldrev"] = std::string(40, '1');
  return {{"object_kind", "merge_request"}, {"object_attributes", attrs}};
}

TEST_CASE("pull request payloads: GitHub's actions and fields", "[webhooks]") {
  for (const auto& [action, want] :
       std::vector<std::pair<std::string, A>>{{"opened", A::kOpen},
                                              {"reopened", A::kOpen},
                                              {"synchronize", A::kUpdate},
                                              {"closed", A::kClose},
                                              {"labeled", A::kOther},
                                              {"edited", A::kOther}}) {
    INFO(action);
    auto pr = ParsePullRequest("github", GitHub(action).dump());
    REQUIRE(pr.ok());
    CHECK(pr->action == want);
    CHECK(pr->action_name == action);
    CHECK(pr->number == 7);
    CHECK(pr->head_ref == "feature");
    CHECK(pr->head_commit == kSha);
    CHECK(pr->base_ref == "main");
    CHECK(pr->same_repository);
  }
  CHECK(!ParsePullRequest("github", GitHub("opened", "fork/r").dump())->same_repository);
  // A deleted fork's head has no repository.
  json gone = GitHub("opened");
  gone["pull_request"]["head"]["repo"] = nullptr;
  CHECK(!ParsePullRequest("github", gone.dump())->same_repository);
  // Not a commit: none.
  json odd = GitHub("opened");
  odd["pull_request"]["head"]["sha"] = "--upload-pack=touch /tmp/x";
  CHECK(ParsePullRequest("github", odd.dump())->head_commit.empty());
}

TEST_CASE("pull request payloads: GitLab's merge request actions", "[webhooks]") {
  CHECK(ParsePullRequest("gitlab", GitLab("open", false).dump())->action == A::kOpen);
  CHECK(ParsePullRequest("gitlab", GitLab("reopen", false).dump())->action == A::kOpen);
  // An update redeploys only when it brought commits (oldrev).
  CHECK(ParsePullRequest("gitlab", GitLab("update", true).dump())->action == A::kUpdate);
  CHECK(ParsePullRequest("gitlab", GitLab("update", false).dump())->action == A::kOther);
  CHECK(ParsePullRequest("gitlab", GitLab("close", false).dump())->action == A::kClose);
  CHECK(ParsePullRequest("gitlab", GitLab("merge", false).dump())->action == A::kClose);
  auto mr = ParsePullRequest("gitlab", GitLab("open", false).dump());
  REQUIRE(mr.ok());
  CHECK(mr->number == 3);
  CHECK(mr->head_ref == "feature");
  CHECK(mr->base_ref == "main");
  CHECK(mr->head_commit == kSha);
  CHECK(mr->same_repository);
  CHECK(!ParsePullRequest("gitlab", GitLab("open", false, 6).dump())->same_repository);
}

TEST_CASE("pull request payloads: wrong shapes name their field", "[webhooks]") {
  CHECK(absl::IsInvalidArgument(ParsePullRequest("github", "[]").status()));
  CHECK(absl::IsInvalidArgument(ParsePullRequest("github", "not json").status()));
  json a = GitHub("opened");
  a["number"] = "7";
  CHECK(rpc::ErrorField(ParsePullRequest("github", a.dump()).status()) == "number");
  json b = GitHub("opened");
  b["pull_request"]["base"] = 5;
  CHECK(rpc::ErrorField(ParsePullRequest("github", b.dump()).status()) == "pull_request.base");
  json c = GitLab("open", false);
  c["object_attributes"]["iid"] = 1.5;
  CHECK(rpc::ErrorField(ParsePullRequest("gitlab", c.dump()).status()) == "object_attributes.iid");
}

}  // namespace
}  // namespace c2d::gateway
