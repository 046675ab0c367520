#pragma once

// The credentials of the all-in-one OpenStack's users, from the
// C2D_TEST_OS_* variables tools/test exports (tools/lib/openstack.sh).

#include "libs/cloud/openstack/session.h"
#include "tests/support/pg_fixture.h"

namespace c2d::cloud::openstack {

// The member "c2d" of project "c2d": what c2d runs as.
inline Credentials User() {
  using testing::RequireEnv;
  return {.auth_url = RequireEnv("C2D_TEST_OS_AUTH_URL"),
          .username = RequireEnv("C2D_TEST_OS_USERNAME"),
          .password = RequireEnv("C2D_TEST_OS_PASSWORD"),
          .user_domain_id = RequireEnv("C2D_TEST_OS_USER_DOMAIN_ID"),
          .project_name = RequireEnv("C2D_TEST_OS_PROJECT_NAME"),
          .project_domain_id = RequireEnv("C2D_TEST_OS_PROJECT_DOMAIN_ID"),
          .region = RequireEnv("C2D_TEST_OS_REGION")};
}

// The cloud's admin: quotas, external networks.
inline Credentials Admin() {
  using testing::RequireEnv;
  Credentials c = User();
  c.username = RequireEnv("C2D_TEST_OS_ADMIN_USERNAME");
  c.password = RequireEnv("C2D_TEST_OS_ADMIN_PASSWORD");
  c.project_name = RequireEnv("C2D_TEST_OS_ADMIN_PROJECT_NAME");
  return c;
}

}  // namespace c2d::cloud::openstack
