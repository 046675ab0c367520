#pragma once

// What a test's projects leave in the shared engine, removed at teardown.
//
// Every test has a database of its own but all share one engine, so a
// fixture that leaves its projects' networks behind slows down the tests
// after it: podman 4.3's CNI backend reloads every network's config after
// each network change, running each plugin binary once per network under
// its network lock, about 10 s with 180 networks, while every container
// create waits.

#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "libs/cloud/local_provider.h"
#include "tests/support/pg_fixture.h"

namespace c2d::testing {

// Removes the containers labelled with a project of `db`, then the projects'
// networks.
inline void RemoveProjectLeftovers(const TestDatabase& db, cloud::Provider& provider) {
  const std::string ids = db.Scalar("SELECT coalesce(string_agg(id, ','), '') FROM projects");
  for (const std::string& project :
       std::vector<std::string>(absl::StrSplit(ids, ',', absl::SkipEmpty()))) {
    if (auto left = provider.List({{"c2d.project", project}}); left.ok()) {
      for (const cloud::Instance& i : *left) (void)provider.Remove(i.ref);
    }
    (void)provider.RemoveNetwork(cloud::ProjectNetwork(project));
  }
}

}  // namespace c2d::testing
