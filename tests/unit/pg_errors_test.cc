#include <catch2/catch.hpp>
#include <pqxx/except>

#include "libs/pg/errors.h"

namespace c2d::pg {
namespace {

TEST_CASE("database errors say what they mean in code and payload, not wording", "[pg]") {
  absl::Status lost = ToStatus(pqxx::broken_connection("server closed the connection"), "claim");
  CHECK(absl::IsUnavailable(lost));
  CHECK(IsConnectionError(lost));
  CHECK(lost.message() == "claim: server closed the connection");
  // An Unavailable of other origin, whatever it says, keeps its connection.
  CHECK_FALSE(IsConnectionError(absl::UnavailableError("claim: x [pg connection]")));

  absl::Status fk = ToStatus(pqxx::foreign_key_violation("insert violates fk"), "insert");
  CHECK(absl::IsFailedPrecondition(fk));
  CHECK(IsForeignKeyViolation(fk));
  absl::Status check = ToStatus(pqxx::check_violation("foreign key words"), "insert");
  CHECK(absl::IsFailedPrecondition(check));
  CHECK_FALSE(IsForeignKeyViolation(check));
  CHECK(absl::IsAlreadyExists(ToStatus(pqxx::unique_violation("dup"), "insert")));
}

}  // namespace
}  // namespace c2d::pg
