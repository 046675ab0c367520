#pragma once

// A fake OpenStack and a session on it as its user "c2d", with short
// timeouts and one quick retry: what the clients' unit tests start from.

#include "libs/cloud/openstack/session.h"
#include "tests/support/fake_openstack.h"

namespace c2d::cloud::openstack {

struct FakeCloud {
  testing::FakeOpenStack os;
  Session session{
      {.auth_url = os.auth_url(), .username = "c2d", .password = "secret", .project_name = "c2d"},
      {.timeout = std::chrono::milliseconds(5'000),
       .retries = 1,
       .backoff_base = std::chrono::milliseconds(10)}};
};

}  // namespace c2d::cloud::openstack
