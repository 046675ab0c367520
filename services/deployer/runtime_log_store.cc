// The deployer's store: the runtime_log_tail table (store.h, section
// "runtime logs").

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "libs/pg/rows.h"
#include "nlohmann/json.hpp"
#include "services/deployer/store.h"
#include "services/deployer/store_rows.h"

namespace c2d::deployer {
namespace {

constexpr pg::Statement kAppendLogs{"runtime_logs_append", R"sql(
INSERT INTO runtime_log_tail (service_id, instance_id, stream, text, at)
SELECT $1, $2, s, t, CASE WHEN m = 0 THEN now() ELSE to_timestamp(m::double precision / 1000000) END
FROM unnest($3::text[], $4::text[], $5::bigint[]) WITH ORDINALITY AS l(s, t, m, n)
ORDER BY n)sql"};

constexpr pg::Statement kTailStart{"runtime_logs_tail_start", R"sql(
SELECT coalesce(min(seq) - 1, 0) FROM (
  SELECT seq FROM runtime_log_tail
  WHERE service_id = $1 AND ($2 = '' OR instance_id = $2)
  ORDER BY seq DESC LIMIT $3) t)sql"};

constexpr pg::Statement kReadLogs{"runtime_logs_read", R"sql(
SELECT seq, stream, text, instance_id, (extract(epoch FROM at) * 1000000)::bigint
FROM runtime_log_tail
WHERE service_id = $1 AND ($2 = '' OR instance_id = $2) AND seq > $3
ORDER BY seq LIMIT $4)sql"};

constexpr pg::Statement kTrimLogs{"runtime_logs_trim", R"sql(
DELETE FROM runtime_log_tail t
USING (SELECT i.id, (SELECT seq FROM runtime_log_tail WHERE instance_id = i.id
                     ORDER BY seq DESC OFFSET $2 LIMIT 1) AS upto
       FROM jsonb_array_elements_text($1::jsonb) AS i (id)) c
WHERE t.instance_id = c.id AND t.seq <= c.upto)sql"};

constexpr pg::Statement kLastLogAt{"runtime_logs_last_at", R"sql(
SELECT i.id, (extract(epoch FROM l.at) * 1000000)::bigint
FROM jsonb_array_elements_text($1::jsonb) AS i (id)
CROSS JOIN LATERAL (SELECT max(at) AS at FROM runtime_log_tail
                    WHERE instance_id = i.id AND stream <> 'system') l
WHERE l.at IS NOT NULL)sql"};

}  // namespace

absl::Status AppendRuntimeLogs(pg::Tx& tx, const std::string& service_id,
                               const std::string& instance_id,
                               const std::vector<RuntimeLine>& lines) {
  if (lines.empty()) return absl::OkStatus();
  std::vector<std::string> streams, texts;
  std::string micros = "{";
  for (const RuntimeLine& l : lines) {
    if (micros.size() > 1) micros += ',';
    absl::StrAppend(&micros, l.at ? absl::ToUnixMicros(*l.at) : 0);
    streams.push_back(l.stream);
    std::string text = l.text.substr(0, 8192);
    text.erase(std::remove(text.begin(), text.end(), '\0'), text.end());
    texts.push_back(std::move(text));
  }
  micros += '}';
  tx.Exec(kAppendLogs, service_id, instance_id, pg::TextArray(streams), pg::TextArray(texts),
          micros);
  tx.Exec(rows::kNotify, kRuntimeLogChannel, service_id);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> TailStart(pg::Tx& tx, const std::string& service_id,
                                  const std::string& instance_id, int n) {
  return tx.Exec(kTailStart, service_id, instance_id, n)[0][0].as<int64_t>();
}

absl::StatusOr<std::vector<v1::LogLine>> ReadRuntimeLogs(pg::Tx& tx, const std::string& service_id,
                                                         const std::string& instance_id,
                                                         int64_t after_seq, int limit) {
  std::vector<v1::LogLine> out;
  for (const auto& r : tx.Exec(kReadLogs, service_id, instance_id, after_seq, limit)) {
    v1::LogLine& l = out.emplace_back();
    l.set_seq(r[0].as<int64_t>());
    const std::string stream = r[1].as<std::string>();
    l.set_stream(stream == "stderr"   ? v1::LOG_STREAM_STDERR
                 : stream == "system" ? v1::LOG_STREAM_SYSTEM
                                      : v1::LOG_STREAM_STDOUT);
    l.set_text(r[2].as<std::string>());
    l.set_instance_id(r[3].as<std::string>());
    pg::SetTime(r[4], l.mutable_time());
  }
  return out;
}

absl::Status TrimRuntimeLogs(pg::Tx& tx, const std::vector<std::string>& instance_ids, int keep) {
  tx.Exec(kTrimLogs, nlohmann::json(instance_ids).dump(), keep);
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, absl::Time>> LastRuntimeLogTimes(
    pg::Tx& tx, const std::vector<std::string>& instance_ids) {
  std::map<std::string, absl::Time> out;
  for (const auto& r : tx.Exec(kLastLogAt, nlohmann::json(instance_ids).dump())) {
    out[r[0].as<std::string>()] = absl::FromUnixMicros(r[1].as<int64_t>());
  }
  return out;
}

}  // namespace c2d::deployer
