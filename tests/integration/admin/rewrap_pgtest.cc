// Master key rotation (c2d-admin rotate-master-key): every kind of sealed
// value moves under the new key and opens with it alone; nothing else
// changes; a value whose key is missing is reported and left alone; and the
// rotation knows every sealed column of the schema.

#include <algorithm>
#include <catch2/catch.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/common/ids.h"
#include "libs/rpc/proto_json.h"
#include "libs/rpc/repo_url.h"
#include "proto/c2d/v1/common.pb.h"
#include "tests/support/pg_fixture.h"
#include "tools/admin/rewrap.h"

namespace c2d {
namespace {

std::string Hex(const std::string& s) { return absl::BytesToHexString(s); }

struct Keys {
  std::string mk1 = crypto::MasterKeys::Generate("mk1");
  std::string mk2 = crypto::MasterKeys::Generate("mk2");
  crypto::MasterKeys old_only = *crypto::MasterKeys::Parse(mk1);
  crypto::MasterKeys rotating = *crypto::MasterKeys::Parse(mk2 + "," + mk1);
  crypto::MasterKeys new_only = *crypto::MasterKeys::Parse(mk2);
};

// INSERT's four values of a sealed column set.
std::string Values(const crypto::Sealed& s) {
  return absl::StrCat("'", s.key_id, "', decode('", Hex(s.wrapped_key), "', 'hex'), decode('",
                      Hex(s.nonce), "', 'hex'), decode('", Hex(s.ciphertext), "', 'hex')");
}

crypto::Sealed Read(const testing::TestDatabase& db, const std::string& table,
                    const std::string& prefix, const std::string& id) {
  auto col = [&](const std::string& c, bool bytes) {
    std::string v =
        db.Scalar(absl::StrCat("SELECT ", bytes ? "encode(" : "", prefix, c,
                               bytes ? ", 'hex')" : "", " FROM ", table, " WHERE id = '", id, "'"));
    return bytes ? absl::HexStringToBytes(v) : v;
  };
  return {col("key_id", false), col("wrapped_key", true), col("nonce", true),
          col("ciphertext", true)};
}

// A ServiceSpec JSON whose env holds `value` sealed under `keys`.
std::string SpecJson(const crypto::MasterKeys& keys, const std::string& value) {
  v1::ServiceSpec spec;
  spec.set_service_name("web");
  v1::EnvVar* var = spec.add_env();
  var->set_key("TOKEN");
  auto s = *keys.Seal(value, crypto::EnvVarAad("TOKEN"));
  var->mutable_value()->set_key_id(s.key_id);
  var->mutable_value()->set_wrapped_data_key(s.wrapped_key);
  var->mutable_value()->set_nonce(s.nonce);
  var->mutable_value()->set_ciphertext(s.ciphertext);
  return *rpc::ToJson(spec);
}

std::string OpenSpec(const crypto::MasterKeys& keys, const std::string& json) {
  v1::ServiceSpec spec;
  REQUIRE(rpc::FromJson(json, &spec).ok());
  REQUIRE(spec.env_size() == 1);
  const v1::EncryptedValue& v = spec.env(0).value();
  auto plain = keys.Open({v.key_id(), v.wrapped_data_key(), v.nonce(), v.ciphertext()},
                         crypto::EnvVarAad("TOKEN"));
  return plain.ok() ? *plain : std::string(plain.status().message());
}

std::string OpenUrl(const crypto::MasterKeys& keys, const testing::TestDatabase& db,
                    const std::string& table, const std::string& id, const std::string& aad) {
  auto url = rpc::OpenUrl(
      keys,
      absl::HexStringToBytes(db.Scalar(absl::StrCat("SELECT encode(repo_url_sealed, 'hex') FROM ",
                                                    table, " WHERE id = '", id, "'"))),
      aad);
  return url.ok() ? *url : std::string(url.status().message());
}

TEST_CASE("rotating the master key moves every sealed value under the new key, once", "[admin]") {
  testing::TestDatabase db;
  Keys k;
  const std::string project = ids::New("prj"), service = ids::New("svc"), build = ids::New("bld"),
                    deployment = ids::New("dep"), env = ids::New("env"), lost = ids::New("env"),
                    hook = ids::New("hook");
  const std::string url = "https://user:pw@git.example.com/o/r.git";
  const std::string svc_aad = "c2d/repo_url/" + service, bld_aad = "c2d/build_repo_url/" + build;
  db.Exec(absl::StrCat("INSERT INTO projects (id, name) VALUES ('", project, "', 'p')"));
  db.Exec(absl::StrCat(
      "INSERT INTO services (id, project_id, name, type, repo_url, port, repo_url_sealed) VALUES "
      "('",
      service, "', '", project,
      "', 'web', 'web', 'https://***@git.example.com/o/r.git', "
      "8080, decode('",
      Hex(*rpc::SealUrl(k.old_only, url, svc_aad)), "', 'hex'))"));
  db.Exec(
      absl::StrCat("INSERT INTO env_vars (id, service_id, key, key_id, wrapped_key, nonce, "
                   "ciphertext) VALUES ('",
                   env, "', '", service, "', 'TOKEN', ",
                   Values(*k.old_only.Seal("env-secret", crypto::EnvVarAad("TOKEN"))), ")"));
  // Under a key nobody has any more: reported, left alone.
  const crypto::MasterKeys gone = *crypto::MasterKeys::Parse(crypto::MasterKeys::Generate("mk0"));
  const crypto::Sealed lost_value = *gone.Seal("lost", crypto::EnvVarAad("OLD"));
  db.Exec(
      absl::StrCat("INSERT INTO env_vars (id, service_id, key, key_id, wrapped_key, nonce, "
                   "ciphertext) VALUES ('",
                   lost, "', '", service, "', 'OLD', ", Values(lost_value), ")"));
  db.Exec(
      absl::StrCat("INSERT INTO webhooks (id, service_id, provider, secret_key_id, "
                   "secret_wrapped_key, secret_nonce, secret_ciphertext) VALUES ('",
                   hook, "', '", service, "', 'github', ",
                   Values(*k.old_only.Seal("hook-secret", "hook-aad")), ")"));
  const std::string digest = "sha256:" + std::string(64, 'd');
  db.Exec(absl::StrCat(
      "INSERT INTO builds (id, service_id, project_id, state, trigger, repo_url, branch, "
      "commit_sha, build_strategy, spec, image_repository, image_digest, image_size_bytes, "
      "started_at, finished_at, repo_url_sealed) VALUES ('",
      build, "', '", service, "', '", project, "', 'succeeded', 'api', '-', 'main', '",
      std::string(40, 'b'), "', 'auto', '", SpecJson(k.old_only, "build-env"), "', 'r', '", digest,
      "', 1, now(), now(), decode('", Hex(*rpc::SealUrl(k.old_only, url, bld_aad)), "', 'hex'))"));
  db.Exec(
      absl::StrCat("INSERT INTO deployments (id, service_id, project_id, build_id, "
                   "image_repository, image_digest, spec) VALUES ('",
                   deployment, "', '", service, "', '", project, "', '", build, "', 'r', '", digest,
                   "', '", SpecJson(k.old_only, "deploy-env"), "')"));
  const crypto::Sealed env_before = Read(db, "env_vars", "", env);

  auto pool = db.NewPool(2);
  auto report = admin::RewrapAll(*pool, k.rotating);
  REQUIRE(report.ok());
  CHECK(report->rewrapped == std::map<std::string, int64_t>{{"env_vars", 1},
                                                            {"webhooks.secret_", 1},
                                                            {"services.repo_url_sealed", 1},
                                                            {"builds.repo_url_sealed", 1},
                                                            {"builds.spec", 1},
                                                            {"deployments.spec", 1}});
  CHECK(report->failed == std::map<std::string, int64_t>{{"env_vars", 1}});

  // Each opens with the new key alone, to what it was.
  const crypto::Sealed env_after = Read(db, "env_vars", "", env);
  CHECK(env_after.key_id == "mk2");
  CHECK(env_after.ciphertext == env_before.ciphertext);  // only the data key was rewrapped
  CHECK(*k.new_only.Open(env_after, crypto::EnvVarAad("TOKEN")) == "env-secret");
  CHECK(*k.new_only.Open(Read(db, "webhooks", "secret_", hook), "hook-aad") == "hook-secret");
  CHECK(OpenUrl(k.new_only, db, "services", service, svc_aad) == url);
  CHECK(OpenUrl(k.new_only, db, "builds", build, bld_aad) == url);
  CHECK(OpenSpec(k.new_only, db.Scalar("SELECT spec::text FROM builds WHERE id = '" + build +
                                       "'")) == "build-env");
  CHECK(OpenSpec(k.new_only, db.Scalar("SELECT spec::text FROM deployments WHERE id = '" +
                                       deployment + "'")) == "deploy-env");
  CHECK(db.Scalar("SELECT spec->>'service_name' FROM deployments WHERE id = '" + deployment +
                  "'") == "web");
  // The value whose key is gone is untouched.
  CHECK(Read(db, "env_vars", "", lost).wrapped_key == lost_value.wrapped_key);

  // Again: nothing left to move.
  auto again = admin::RewrapAll(*pool, k.rotating);
  REQUIRE(again.ok());
  CHECK(again->rewrapped.empty());
  CHECK(again->failed == std::map<std::string, int64_t>{{"env_vars", 1}});
}

TEST_CASE("the rotation knows every sealed column of the schema", "[admin]") {
  testing::TestDatabase db;
  // Every <prefix>key_id column with a <prefix>wrapped_key beside it.
  const std::string in_schema = db.Scalar(R"sql(
SELECT string_agg(k.table_name || '.' || k.column_name, ',' ORDER BY k.table_name || '.' || k.column_name)
FROM information_schema.columns k JOIN information_schema.columns w
  ON w.table_schema = k.table_schema AND w.table_name = k.table_name
 AND w.column_name = left(k.column_name, length(k.column_name) - 6) || 'wrapped_key'
WHERE k.table_schema = 'public' AND k.column_name LIKE '%key_id')sql");
  std::vector<std::string> known = admin::SealedKeyIdColumns();
  std::sort(known.begin(), known.end());
  CHECK(in_schema == absl::StrJoin(known, ","));
  // Serialized values: repo_url_sealed of services and builds only.
  CHECK(
      db.Scalar("SELECT string_agg(table_name || '.' || column_name, ',' ORDER BY table_name) FROM "
                "information_schema.columns WHERE table_schema = 'public' AND column_name "
                "LIKE '%sealed%'") == "builds.repo_url_sealed,services.repo_url_sealed");
  // ServiceSpecs (with their env) in jsonb: builds and deployments only.
  CHECK(
      db.Scalar(
          "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.columns "
          "WHERE table_schema = 'public' AND column_name = 'spec' AND data_type = "
          "'jsonb'") == "builds,deployments");
}

}  // namespace
}  // namespace c2d
