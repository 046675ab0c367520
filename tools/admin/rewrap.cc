#include "tools/admin/rewrap.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "proto/c2d/v1/common.pb.h"

namespace c2d::admin {
namespace {

using nlohmann::json;

struct ColumnSet {
  const char* table;
  const char* prefix;  // of <prefix>key_id, <prefix>wrapped_key
};
constexpr ColumnSet kColumnSets[] = {
    {"env_vars", ""},
    {"webhooks", "secret_"},
    {"databases", "password_a_"},
    {"databases", "password_b_"},
    {"databases", "admin_password_"},
    {"acme_accounts", "account_key_"},
    {"certificates", "private_key_"},
    {"certificates", "order_key_"},
    {"cert_authorities", "key_"},
};
// Tables with a serialized EncryptedValue in repo_url_sealed.
constexpr const char* kSealedUrls[] = {"services", "builds"};
// Tables with a ServiceSpec in `spec` (jsonb).
constexpr const char* kSpecs[] = {"builds", "deployments"};

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

// One row's update, applied only if the row still holds what was read;
// Aborted when it changed meanwhile (its writer sealed it anew, under the
// current key).
template <typename... Args>
absl::Status Apply(pg::Pool& pool, const std::string& sql, const Args&... args) {
  return pool.Transact("rewrap a value", [&](pg::Tx& tx) {
    if (tx.work().exec_params(sql, args...).affected_rows() == 0) {
      return absl::AbortedError("changed meanwhile");
    }
    return absl::OkStatus();
  });
}

void Count(const absl::Status& s, const std::string& where, RewrapReport& report) {
  if (absl::IsAborted(s)) return;
  ++(s.ok() ? report.rewrapped : report.failed)[where];
}

absl::Status RewrapColumns(pg::Pool& pool, const crypto::MasterKeys& keys, const ColumnSet& set,
                           RewrapReport& report) {
  const std::string p = set.prefix, where = absl::StrCat(set.table, set.prefix[0] ? "." : "", p);
  auto rows = pool.Read("sealed values", [&](pg::Tx& tx) -> absl::StatusOr<pqxx::result> {
    return tx.work().exec_params(
        absl::StrCat("SELECT id, ", p, "key_id, encode(", p, "wrapped_key, 'hex') FROM ", set.table,
                     " WHERE ", p, "key_id IS NOT NULL AND ", p, "key_id <> $1"),
        keys.current_id());
  });
  if (!rows.ok()) return rows.status();
  const std::string update = absl::StrCat("UPDATE ", set.table, " SET ", p, "key_id = $2, ", p,
                                          "wrapped_key = decode($3, 'hex') WHERE id = $1 AND ", p,
                                          "key_id = $4 AND ", p, "wrapped_key = decode($5, 'hex')");
  for (const auto& r : *rows) {
    crypto::Sealed old{r[1].as<std::string>(), absl::HexStringToBytes(r[2].as<std::string>()), "",
                       ""};
    auto moved = keys.Rewrap(old);
    Count(moved.ok() ? Apply(pool, update, r[0].as<std::string>(), moved->key_id,
                             Hex(moved->wrapped_key), old.key_id, r[2].as<std::string>())
                     : moved.status(),
          where, report);
  }
  return absl::OkStatus();
}

absl::Status RewrapUrls(pg::Pool& pool, const crypto::MasterKeys& keys, const std::string& table,
                        RewrapReport& report) {
  const std::string where = table + ".repo_url_sealed";
  auto rows = pool.Read("sealed urls", [&](pg::Tx& tx) -> absl::StatusOr<pqxx::result> {
    return tx.work().exec(absl::StrCat("SELECT id, encode(repo_url_sealed, 'hex') FROM ", table,
                                       " WHERE octet_length(repo_url_sealed) > 0"));
  });
  if (!rows.ok()) return rows.status();
  const std::string update = absl::StrCat(
      "UPDATE ", table,
      " SET repo_url_sealed = decode($2, 'hex') WHERE id = $1 AND repo_url_sealed = decode($3, "
      "'hex')");
  for (const auto& r : *rows) {
    v1::EncryptedValue v;
    if (!v.ParseFromString(absl::HexStringToBytes(r[1].as<std::string>()))) {
      Count(absl::DataLossError("unreadable"), where, report);
      continue;
    }
    if (v.key_id() == keys.current_id()) continue;
    auto moved = keys.Rewrap({v.key_id(), v.wrapped_data_key(), v.nonce(), v.ciphertext()});
    if (moved.ok()) {
      v.set_key_id(moved->key_id);
      v.set_wrapped_data_key(moved->wrapped_key);
    }
    Count(moved.ok() ? Apply(pool, update, r[0].as<std::string>(), Hex(v.SerializeAsString()),
                             r[1].as<std::string>())
                     : moved.status(),
          where, report);
  }
  return absl::OkStatus();
}

// Rewraps every env value of a ServiceSpec's JSON in place (either JSON
// spelling of the fields), leaving everything else as it was.
absl::Status RewrapSpecEnv(const crypto::MasterKeys& keys, json& spec) {
  if (!spec.contains("env") || !spec["env"].is_array()) return absl::OkStatus();
  for (json& var : spec["env"]) {
    if (!var.is_object() || !var.contains("value") || !var["value"].is_object()) continue;
    json& v = var["value"];
    const char* id_field = v.contains("key_id") ? "key_id" : "keyId";
    const char* wrapped_field =
        v.contains("wrapped_data_key") ? "wrapped_data_key" : "wrappedDataKey";
    if (!v.contains(id_field) || !v[id_field].is_string() || !v.contains(wrapped_field) ||
        !v[wrapped_field].is_string()) {
      return absl::DataLossError("an env value without its key");
    }
    std::string wrapped;
    if (!absl::Base64Unescape(v[wrapped_field].get<std::string>(), &wrapped)) {
      return absl::DataLossError("an env value's wrapped key is not base64");
    }
    auto moved = keys.Rewrap({v[id_field].get<std::string>(), wrapped, "", ""});
    if (!moved.ok()) return moved.status();
    v[id_field] = moved->key_id;
    v[wrapped_field] = absl::Base64Escape(moved->wrapped_key);
  }
  return absl::OkStatus();
}

absl::Status RewrapSpecs(pg::Pool& pool, const crypto::MasterKeys& keys, const std::string& table,
                         RewrapReport& report) {
  const std::string where = table + ".spec";
  auto rows = pool.Read("specs", [&](pg::Tx& tx) -> absl::StatusOr<pqxx::result> {
    return tx.work().exec_params(absl::StrCat("SELECT id, spec::text FROM ", table, R"sql( t
WHERE jsonb_typeof(spec->'env') = 'array' AND EXISTS (
  SELECT 1 FROM jsonb_array_elements(t.spec->'env') e
  WHERE coalesce(e->'value'->>'key_id', e->'value'->>'keyId') <> $1))sql"),
                                 keys.current_id());
  });
  if (!rows.ok()) return rows.status();
  const std::string update =
      absl::StrCat("UPDATE ", table, " SET spec = $2::jsonb WHERE id = $1 AND spec = $3::jsonb");
  for (const auto& r : *rows) {
    json spec = json::parse(r[1].as<std::string>(), nullptr, /*allow_exceptions=*/false);
    absl::Status s = spec.is_object() ? RewrapSpecEnv(keys, spec)
                                      : absl::DataLossError("a spec that is not a JSON object");
    Count(s.ok() ? Apply(pool, update, r[0].as<std::string>(), spec.dump(), r[1].as<std::string>())
                 : s,
          where, report);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RewrapReport> RewrapAll(pg::Pool& pool, const crypto::MasterKeys& keys) {
  RewrapReport report;
  for (const ColumnSet& set : kColumnSets) {
    if (auto s = RewrapColumns(pool, keys, set, report); !s.ok()) return s;
  }
  for (const char* table : kSealedUrls) {
    if (auto s = RewrapUrls(pool, keys, table, report); !s.ok()) return s;
  }
  for (const char* table : kSpecs) {
    if (auto s = RewrapSpecs(pool, keys, table, report); !s.ok()) return s;
  }
  return report;
}

std::vector<std::string> SealedKeyIdColumns() {
  std::vector<std::string> out;
  for (const ColumnSet& set : kColumnSets) {
    out.push_back(absl::StrCat(set.table, ".", set.prefix, "key_id"));
  }
  return out;
}

}  // namespace c2d::admin
