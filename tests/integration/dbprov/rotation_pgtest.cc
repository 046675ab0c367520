// dbprov's two-role credential rotation on PostgreSQL, by request and
// every rotation_days.

#include "tests/integration/dbprov/dbprov_fixture.h"

namespace c2d {
namespace {

// The fixture and its helpers (Postgres, Scalar, Podman, WaitBackup, …).
using namespace testing;

TEST_CASE("credentials rotate: the idle role gets a new password, then the old role is disabled",
          "[dbprov]") {
  DbprovFixture f;
  v1::Database d;
  REQUIRE(f.Create(Postgres("turn"), &d).ok());
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  const std::string a = f.Password(d.id(), "a"), b = f.Password(d.id(), "b");
  {
    pqxx::connection c(f.RoleUrl(d, "a", a));
    pqxx::nontransaction w(c);
    w.exec0("CREATE TABLE kept (n integer)");
    w.exec0("INSERT INTO kept VALUES (7)");
  }
  // A session of the old role, open across the rotation.
  pqxx::connection held(f.RoleUrl(d, "a", a));

  v1::RotateCredentialsRequest rotate;
  rotate.set_database_id(d.id());
  v1::Database rotating;
  REQUIRE(f.service_->RotateCredentials(nullptr, &rotate, &rotating).ok());
  CHECK(rotating.state() == v1::DATABASE_STATE_ROTATING);
  CHECK(rotating.retiring_role() == "a");
  // Once is enough: a second request while it runs is refused.
  v1::Database again;
  grpc::Status busy = f.service_->RotateCredentials(nullptr, &rotate, &again);
  CHECK(busy.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(busy.error_message(), Catch::Contains("is rotating"));

  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  CHECK(d.active_role() == "b");
  CHECK(d.retiring_role().empty());
  CHECK(d.failure_reason().empty());
  CHECK(d.has_last_rotated_at());
  // The new role has a new password and sees the same data; the old one
  // can log in with neither its old password nor its new one, and its
  // session is gone.
  const std::string new_b = f.Password(d.id(), "b");
  CHECK(new_b != b);
  CHECK(Scalar(f.RoleUrl(d, "b", new_b), "SELECT n FROM kept") == "7");
  CHECK_THROWS(Scalar(f.RoleUrl(d, "b", b), "SELECT 1"));
  CHECK_THROWS(Scalar(f.RoleUrl(d, "a", a), "SELECT 1"));
  CHECK(f.Password(d.id(), "a") != a);
  CHECK_THROWS(Scalar(f.RoleUrl(d, "a", f.Password(d.id(), "a")), "SELECT 1"));
  CHECK_THROWS([&] {
    pqxx::nontransaction w(held);
    w.exec1("SELECT 1");
  }());
  // Both still own what either made.
  {
    pqxx::connection c(f.RoleUrl(d, "b", new_b));
    pqxx::nontransaction w(c);
    w.exec0("INSERT INTO kept VALUES (8)");
  }

  // And back again, to role a with yet another password.
  REQUIRE(f.service_->RotateCredentials(nullptr, &rotate, &rotating).ok());
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  CHECK(d.active_role() == "a");
  CHECK(Scalar(f.RoleUrl(d, "a", f.Password(d.id(), "a")), "SELECT count(*) FROM kept") == "2");
  CHECK_THROWS(Scalar(f.RoleUrl(d, "b", new_b), "SELECT 1"));

  // Every rotation_days, the leader starts one by itself.
  f.db_.Exec(
      "UPDATE databases SET rotation_days = 1, last_rotated_at = now() - interval '2 days' "
      "WHERE id = '" +
      d.id() + "'");
  CHECK(f.rotations_->StartDue() == 1);
  CHECK(f.rotations_->StartDue() == 0);  // once
  d = f.WaitState(d.id(), v1::DATABASE_STATE_AVAILABLE);
  CHECK(d.active_role() == "b");
  CHECK(f.rotations_->StartDue() == 0);  // rotated just now

  // Bad requests change nothing.
  rotate.set_database_id("db_nope");
  CHECK(f.service_->RotateCredentials(nullptr, &rotate, &again).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  rotate.set_database_id(ids::New("db"));
  CHECK(f.service_->RotateCredentials(nullptr, &rotate, &again).error_code() ==
        grpc::StatusCode::NOT_FOUND);
}

}  // namespace
}  // namespace c2d
