#include "libs/common/env.h"

#include <stdlib.h>

#include <catch2/catch.hpp>

namespace c2d {
namespace {

using std::chrono::milliseconds;

TEST_CASE("env getters parse values and name the variable in errors", "[env]") {
  setenv("C2D_T_INT", "42", 1);
  CHECK(*env::GetInt("C2D_T_INT", 1, 0, 100) == 42);
  setenv("C2D_T_INT", "420", 1);
  auto out_of_range = env::GetInt("C2D_T_INT", 1, 0, 100);
  REQUIRE_FALSE(out_of_range.ok());
  CHECK(std::string(out_of_range.status().message()) ==
        "C2D_T_INT=\"420\" is not valid: expected an integer from 0 to 100");
  setenv("C2D_T_INT", "x", 1);
  CHECK_FALSE(env::GetInt("C2D_T_INT", 1, 0, 100).ok());
  unsetenv("C2D_T_INT");
  CHECK(*env::GetInt("C2D_T_INT", 7, 0, 100) == 7);

  setenv("C2D_T_BOOL", "Yes", 1);
  CHECK(*env::GetBool("C2D_T_BOOL", false));
  setenv("C2D_T_BOOL", "maybe", 1);
  CHECK_FALSE(env::GetBool("C2D_T_BOOL", false).ok());

  CHECK_FALSE(env::GetRequired("C2D_T_UNSET").ok());
  CHECK(std::string(env::GetRequired("C2D_T_UNSET").status().message()) ==
        "C2D_T_UNSET is not set");
}

TEST_CASE("durations accept ms, s, m, h and bare seconds", "[env]") {
  CHECK(*env::ParseDuration("250ms") == milliseconds(250));
  CHECK(*env::ParseDuration("30s") == milliseconds(30'000));
  CHECK(*env::ParseDuration("5m") == milliseconds(300'000));
  CHECK(*env::ParseDuration("2h") == milliseconds(7'200'000));
  CHECK(*env::ParseDuration("3") == milliseconds(3'000));
  CHECK_FALSE(env::ParseDuration("").ok());
  CHECK_FALSE(env::ParseDuration("s").ok());
  CHECK_FALSE(env::ParseDuration("-1s").ok());
  CHECK_FALSE(env::ParseDuration("1.5s").ok());
  CHECK_FALSE(env::ParseDuration("10d").ok());

  setenv("C2D_T_DUR", "1h", 1);
  auto too_long =
      env::GetDuration("C2D_T_DUR", milliseconds(1), milliseconds(0), milliseconds(60'000));
  REQUIRE_FALSE(too_long.ok());
  CHECK(std::string(too_long.status().message()).find("C2D_T_DUR=\"1h\"") == 0);
}

TEST_CASE("addresses need a host and a port in range", "[env]") {
  CHECK(*env::GetAddress("C2D_T_UNSET_ADDR", "127.0.0.1:7001") == "127.0.0.1:7001");
  setenv("C2D_T_ADDR", "localhost:70000", 1);
  CHECK_FALSE(env::GetAddress("C2D_T_ADDR", "").ok());
  setenv("C2D_T_ADDR", ":80", 1);
  CHECK_FALSE(env::GetAddress("C2D_T_ADDR", "").ok());
  setenv("C2D_T_ADDR", "[::1]:0", 1);
  CHECK(env::GetAddress("C2D_T_ADDR", "").ok());
}

}  // namespace
}  // namespace c2d
