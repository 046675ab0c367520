#include "libs/jobs/queue.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "libs/pg/rows.h"
#include "nlohmann/json.hpp"

namespace c2d::jobs {
namespace {

// Columns of a Job, in the order RowToJob reads them.
#define C2D_JOB_COLUMNS                                                           \
  "id, queue, kind, payload::text, state, priority, attempts, max_attempts, "     \
  "coalesce(unique_key, ''), coalesce(last_error, ''), coalesce(locked_by, ''), " \
  "(extract(epoch FROM run_at) * 1000000)::bigint"

// One job, and its queue's NOTIFY when it went in ($8: the channel).
constexpr pg::Statement kInsert{"jobs_insert", R"sql(
WITH inserted AS (
  INSERT INTO jobs (queue, kind, payload, priority, run_at, max_attempts, unique_key)
  VALUES ($1, $2, $3::jsonb, $4,
          coalesce(to_timestamp($5::double precision / 1000000), now()), $6, NULLIF($7, ''))
  ON CONFLICT (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'running')
    DO NOTHING
  RETURNING id)
SELECT id, pg_notify($8, '') FROM inserted)sql"};

// Many jobs in one statement, as columns ($1..$7: queue, kind, payload,
// priority, run_at in Unix microseconds or '', max_attempts, unique key or
// ''): ids are drawn in the batch's order (so equal jobs run in the order
// given), and each row says whether it went in or met a live job with its
// unique key.
#define C2D_JOB_COLUMNS_INPUT                                               \
  "unnest($1::text[], $2::text[], $3::text[], $4::smallint[], $5::text[], " \
  "$6::integer[], $7::text[]) WITH ORDINALITY "                             \
  "AS u(queue, kind, payload, priority, run_at_us, max_attempts, unique_key, ord)"
#define C2D_JOB_RUN_AT \
  "coalesce(to_timestamp(NULLIF(run_at_us, '')::double precision / 1000000), now())"

constexpr pg::Statement kInsertMany{"jobs_insert_many", R"sql(
WITH input AS (
  SELECT b.*, nextval(pg_get_serial_sequence('jobs', 'id')) AS id
  FROM (SELECT * FROM )sql" C2D_JOB_COLUMNS_INPUT R"sql( ORDER BY ord) b),
inserted AS (
  INSERT INTO jobs (id, queue, kind, payload, priority, run_at, max_attempts, unique_key)
  OVERRIDING SYSTEM VALUE
  SELECT id, queue, kind, payload::jsonb, priority, )sql" C2D_JOB_RUN_AT R"sql(, max_attempts,
         NULLIF(unique_key, '')
  FROM input ORDER BY ord
  ON CONFLICT (queue, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('available', 'running')
    DO NOTHING
  RETURNING id)
SELECT input.ord, input.id, inserted.id IS NOT NULL
FROM input LEFT JOIN inserted USING (id) ORDER BY input.ord)sql"};

// A batch without unique keys needs no conflict handling: a plain insert,
// whose RETURNING gives the ids in insertion order, that is the batch's.
constexpr pg::Statement kInsertManyPlain{"jobs_insert_many_plain", R"sql(
INSERT INTO jobs (queue, kind, payload, priority, run_at, max_attempts)
SELECT queue, kind, payload::jsonb, priority, )sql" C2D_JOB_RUN_AT R"sql(, max_attempts
FROM )sql" C2D_JOB_COLUMNS_INPUT R"sql(
ORDER BY ord
RETURNING id)sql"};

constexpr pg::Statement kFindLive{"jobs_find_live", R"sql(
SELECT id FROM jobs
WHERE queue = $1 AND unique_key = $2 AND state IN ('available', 'running'))sql"};

constexpr pg::Statement kNotify{"jobs_notify", "SELECT pg_notify($1, '')"};

// A worker's claims, leases and outcomes commit without waiting for their
// WAL to reach the disk (the statements end with this join, which sets that
// for their transaction, so that each can run on its own in one round trip).
// If PostgreSQL itself crashes, the last few hundred milliseconds of them may
// be lost: a claim or an outcome then never happened, and the job runs again
// (see Claim). Enqueues, in the producers' transactions, stay durable.
#define C2D_ASYNC_COMMIT \
  " CROSS JOIN (SELECT set_config('synchronous_commit', 'off', true)) AS async"

constexpr pg::Statement kCancel{"jobs_cancel", R"sql(
UPDATE jobs
SET state = 'cancelled', lease_until = NULL, locked_by = NULL,
    finished_at = now(), updated_at = now()
WHERE id = $1 AND state IN ('available', 'running')
RETURNING id)sql"};

constexpr pg::Statement kGet{"jobs_get", "SELECT " C2D_JOB_COLUMNS " FROM jobs WHERE id = $1"};

// The claim (DESIGN §3). SKIP LOCKED lets concurrent workers take disjoint
// batches without waiting on each other; the partial index jobs_claim_idx
// serves the inner SELECT.
constexpr pg::Statement kClaim{"jobs_claim", R"sql(
WITH claimed AS (
  UPDATE jobs
  SET state = 'running', attempts = attempts + 1, locked_by = $3,
      lease_until = now() + $5 * interval '1 millisecond',
      started_at = now(), updated_at = now()
  WHERE id IN (
    SELECT id FROM jobs
    WHERE queue = $1 AND state = 'available' AND run_at <= now()
      AND kind = ANY($2::text[])
    ORDER BY priority, run_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED)
  RETURNING )sql" C2D_JOB_COLUMNS R"sql()
SELECT claimed.* FROM claimed)sql" C2D_ASYNC_COMMIT R"sql( ORDER BY priority, 12, id)sql"};

// Only scheduled jobs (jobs_scheduled_idx): one due at once was claimable
// just now, or is held by a concurrent claim (a NOTIFY or the poll finds it
// if that rolls back).
constexpr pg::Statement kNextRunAt{"jobs_next_run_at", R"sql(
SELECT (extract(epoch FROM run_at) * 1000000)::bigint FROM jobs
WHERE queue = $1 AND state = 'available' AND run_at > created_at AND kind = ANY($2::text[])
ORDER BY run_at LIMIT 1)sql"};

// Heartbeats and outcomes match each claim by attempt and holder, so a
// stale worker whose job was rescued and claimed again can never overwrite
// the new run. Each covers a batch of claims: $1..$3 (ids, attempts,
// holders) as arrays, or $1 as a JSON array.
#define C2D_HELD_CLAIM \
  "j.id = c.id AND j.attempts = c.attempt AND j.locked_by = c.holder AND j.state = 'running'"
#define C2D_CLAIM_ARRAYS "unnest($1::bigint[], $2::integer[], $3::text[]) AS c(id, attempt, holder)"

constexpr pg::Statement kHeartbeat{"jobs_heartbeat", R"sql(
WITH extended AS (
  UPDATE jobs j
  SET lease_until = now() + $4 * interval '1 millisecond', updated_at = now()
  FROM )sql" C2D_CLAIM_ARRAYS R"sql(
  WHERE )sql" C2D_HELD_CLAIM R"sql(
  RETURNING j.id)
SELECT extended.id FROM extended)sql" C2D_ASYNC_COMMIT};

constexpr pg::Statement kSucceeded{"jobs_succeeded", R"sql(
WITH done AS (
  UPDATE jobs j
  SET state = 'succeeded', lease_until = NULL, locked_by = NULL,
      finished_at = now(), updated_at = now()
  FROM )sql" C2D_CLAIM_ARRAYS R"sql(
  WHERE )sql" C2D_HELD_CLAIM R"sql(
  RETURNING j.id)
SELECT done.id FROM done)sql" C2D_ASYNC_COMMIT};

constexpr pg::Statement kFailed{"jobs_failed", R"sql(
WITH done AS (
  UPDATE jobs j
  SET state = CASE WHEN c.permanent OR j.attempts >= j.max_attempts THEN 'failed'
                   ELSE 'available' END,
      run_at = CASE WHEN c.permanent OR j.attempts >= j.max_attempts THEN j.run_at
                    ELSE now() + c.delay_ms * interval '1 millisecond' END,
      finished_at = CASE WHEN c.permanent OR j.attempts >= j.max_attempts THEN now() END,
      last_error = c.error, lease_until = NULL, locked_by = NULL, updated_at = now()
  FROM jsonb_to_recordset($1::jsonb) AS c(id bigint, attempt integer, holder text, error text,
                                           permanent boolean, delay_ms bigint)
  WHERE )sql" C2D_HELD_CLAIM R"sql(
  RETURNING j.id, j.state)
SELECT done.id, done.state FROM done)sql" C2D_ASYNC_COMMIT};

constexpr pg::Statement kRelease{"jobs_release", R"sql(
WITH done AS (
  UPDATE jobs j
  SET state = 'available', attempts = j.attempts - 1, run_at = now(),
      last_error = c.error, lease_until = NULL, locked_by = NULL, updated_at = now()
  FROM jsonb_to_recordset($1::jsonb) AS c(id bigint, attempt integer, holder text, error text)
  WHERE )sql" C2D_HELD_CLAIM R"sql(
  RETURNING j.id, j.queue)
-- Wakes the queue's workers (Channel(); one notification per channel).
SELECT done.id, pg_notify('c2d_jobs_' || done.queue, '') FROM done)sql" C2D_ASYNC_COMMIT};

constexpr pg::Statement kRescue{"jobs_rescue", R"sql(
UPDATE jobs
SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'available' END,
    finished_at = CASE WHEN attempts >= max_attempts THEN now() END,
    run_at = now(),
    last_error = 'lease expired: worker ' || locked_by || ' stopped heartbeating',
    lease_until = NULL, locked_by = NULL, updated_at = now()
WHERE id IN (
  SELECT id FROM jobs
  WHERE state = 'running' AND lease_until < now()
  ORDER BY lease_until
  LIMIT $1
  FOR UPDATE SKIP LOCKED)
RETURNING id, queue, state)sql"};

// Through the two partial indexes (an index-only count per queue).
// Age: an available job waits from its run_at on (one scheduled for later
// is not waiting yet), a running one from its claim.
constexpr pg::Statement kDepths{"jobs_depths", R"sql(
SELECT queue, 'available', count(*),
       coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now())), 0)
FROM jobs WHERE state = 'available' GROUP BY queue
UNION ALL
SELECT queue, 'running', count(*), coalesce(extract(epoch FROM now() - min(started_at)), 0)
FROM jobs WHERE state = 'running' GROUP BY queue)sql"};

bool ValidName(absl::string_view s) {
  if (s.empty() || s.size() > 40 || s[0] < 'a' || s[0] > 'z') return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

// Text columns hold no NUL (nor does jsonb, where "\u0000" is refused).
std::string WithoutNul(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '\0'), s.end());
  return s;
}

Job RowToJob(const pqxx::row& r) {
  Job j;
  j.id = r[0].as<int64_t>();
  j.queue = r[1].as<std::string>();
  j.kind = r[2].as<std::string>();
  j.payload = r[3].as<std::string>();
  j.state = ParseState(r[4].as<std::string>()).value_or(State::kAvailable);
  j.priority = r[5].as<int>();
  j.attempts = r[6].as<int>();
  j.max_attempts = r[7].as<int>();
  j.unique_key = r[8].as<std::string>();
  j.last_error = r[9].as<std::string>();
  j.locked_by = r[10].as<std::string>();
  j.run_at = absl::FromUnixMicros(r[11].as<int64_t>());
  return j;
}

// The job's payload, parsed, or why the job is refused.
absl::StatusOr<nlohmann::json> Validate(const NewJob& job) {
  if (!ValidName(job.queue)) {
    return absl::InvalidArgumentError(absl::StrCat("job queue \"", job.queue, "\" is not valid"));
  }
  if (!ValidName(job.kind)) {
    return absl::InvalidArgumentError(absl::StrCat("job kind \"", job.kind, "\" is not valid"));
  }
  nlohmann::json payload = nlohmann::json::parse(job.payload, nullptr, /*allow_exceptions=*/false);
  if (!payload.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("payload of a ", job.kind, " job is not a JSON object"));
  }
  if (job.max_attempts < 1) {
    return absl::InvalidArgumentError("max_attempts must be at least 1");
  }
  return payload;
}

}  // namespace

// kRelease builds the same name in SQL.
std::string Channel(absl::string_view queue) { return absl::StrCat("c2d_jobs_", queue); }

absl::StatusOr<Enqueued> Enqueue(pg::Tx& tx, const NewJob& job) {
  if (auto valid = Validate(job); !valid.ok()) return valid.status();
  std::optional<int64_t> run_at_us;
  if (job.run_at) run_at_us = absl::ToUnixMicros(*job.run_at);
  // Between a conflicting insert and the look-up the live job may end; then
  // the next insert succeeds. Two rounds settle every interleaving but a
  // pathological one, reported as Aborted so the caller's transaction retries.
  for (int round = 0; round < 3; ++round) {
    pqxx::result r = run_at_us
                         ? tx.Exec(kInsert, job.queue, job.kind, job.payload, job.priority,
                                   *run_at_us, job.max_attempts, job.unique_key, Channel(job.queue))
                         : tx.Exec(kInsert, job.queue, job.kind, job.payload, job.priority, nullptr,
                                   job.max_attempts, job.unique_key, Channel(job.queue));
    if (!r.empty()) return Enqueued{r[0][0].as<int64_t>(), true};
    pqxx::result live = tx.Exec(kFindLive, job.queue, job.unique_key);
    if (!live.empty()) return Enqueued{live[0][0].as<int64_t>(), false};
  }
  return absl::AbortedError(
      absl::StrCat("job with unique key ", job.unique_key, " kept changing; retry"));
}

namespace {

// A batch as the columns of kInsertMany's parameters, one entry per job
// that goes to the database; `index` maps each back to the caller's batch.
struct BatchColumns {
  std::vector<std::string> queue, kind, payload, priority, run_at_us, max_attempts, unique_key;
  std::vector<size_t> index;

  void Add(size_t i, const NewJob& job) {
    index.push_back(i);
    queue.push_back(job.queue);
    kind.push_back(job.kind);
    payload.push_back(job.payload);
    priority.push_back(std::to_string(job.priority));
    run_at_us.push_back(job.run_at ? std::to_string(absl::ToUnixMicros(*job.run_at)) : "");
    max_attempts.push_back(std::to_string(job.max_attempts));
    unique_key.push_back(job.unique_key);
  }

  pqxx::result Insert(pg::Tx& tx, const pg::Statement& statement) const {
    return tx.Exec(statement, pg::TextArray(queue), pg::TextArray(kind), pg::TextArray(payload),
                   pg::TextArray(priority), pg::TextArray(run_at_us), pg::TextArray(max_attempts),
                   pg::TextArray(unique_key));
  }
};

// The ids of a batch without unique keys, in the batch's order.
absl::Status InsertPlain(pg::Tx& tx, const BatchColumns& batch, std::vector<Enqueued>& out) {
  pqxx::result r = batch.Insert(tx, kInsertManyPlain);
  if (r.size() != out.size()) {
    return absl::InternalError("bulk enqueue: the database returned another number of ids");
  }
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = Enqueued{r[i][0].as<int64_t>(), true};
    if (i > 0 && out[i].id <= out[i - 1].id) {
      return absl::InternalError("bulk enqueue: ids came back out of the batch's order");
    }
  }
  return absl::OkStatus();
}

// The batch's new jobs; a job whose unique key a live job holds is that one
// (or, if it just ended, a new one).
absl::Status InsertKeyed(pg::Tx& tx, const std::vector<NewJob>& jobs, const BatchColumns& batch,
                         std::vector<Enqueued>& out) {
  for (const auto& row : batch.Insert(tx, kInsertMany)) {
    const size_t i = batch.index.at(row[0].as<size_t>() - 1);
    if (row[2].as<bool>()) {
      out[i] = Enqueued{row[1].as<int64_t>(), true};
      continue;
    }
    auto e = Enqueue(tx, jobs[i]);
    if (!e.ok()) return e.status();
    out[i] = *e;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Enqueued> Enqueue(pg::Pool& pool, const NewJob& job) {
  return pool.Read("enqueue a job", [&](pg::Tx& tx) { return Enqueue(tx, job); });
}

absl::StatusOr<std::vector<Enqueued>> EnqueueMany(pg::Tx& tx, const std::vector<NewJob>& jobs) {
  // A later job with the unique key of an earlier one of the batch is that one.
  std::map<std::pair<std::string, std::string>, size_t> first_with_key;
  std::vector<size_t> same_as(jobs.size());
  BatchColumns batch;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const NewJob& job = jobs[i];
    if (auto valid = Validate(job); !valid.ok()) return valid.status();
    same_as[i] = i;
    if (!job.unique_key.empty()) {
      auto [it, first] = first_with_key.try_emplace({job.queue, job.unique_key}, i);
      if (!first) {
        same_as[i] = it->second;
        continue;
      }
    }
    batch.Add(i, job);
  }
  std::vector<Enqueued> out(jobs.size());
  if (jobs.empty()) return out;
  absl::Status inserted =
      first_with_key.empty() ? InsertPlain(tx, batch, out) : InsertKeyed(tx, jobs, batch, out);
  if (!inserted.ok()) return inserted;
  std::set<std::string> queues;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (same_as[i] != i) out[i] = Enqueued{out[same_as[i]].id, false};
    if (out[i].created) queues.insert(jobs[i].queue);
  }
  for (const std::string& q : queues) tx.Exec(kNotify, Channel(q));
  return out;
}

absl::StatusOr<bool> Cancel(pg::Tx& tx, int64_t id) { return !tx.Exec(kCancel, id).empty(); }

absl::StatusOr<Job> Get(pg::Tx& tx, int64_t id) {
  pqxx::result r = tx.Exec(kGet, id);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("job ", id, " does not exist"));
  return RowToJob(r[0]);
}

absl::StatusOr<std::vector<Job>> Claim(pg::Tx& tx, absl::string_view queue,
                                       const std::vector<std::string>& kinds,
                                       absl::string_view holder, int limit,
                                       std::chrono::milliseconds lease) {
  std::vector<Job> out;
  for (const auto& row : tx.Exec(kClaim, std::string(queue), pg::TextArray(kinds),
                                 std::string(holder), limit, static_cast<int64_t>(lease.count()))) {
    out.push_back(RowToJob(row));
  }
  return out;
}

absl::StatusOr<std::optional<absl::Time>> NextRunAt(pg::Tx& tx, absl::string_view queue,
                                                    const std::vector<std::string>& kinds) {
  pqxx::result r = tx.Exec(kNextRunAt, std::string(queue), pg::TextArray(kinds));
  if (r.empty() || r[0][0].is_null()) return std::optional<absl::Time>();
  return std::optional<absl::Time>(absl::FromUnixMicros(r[0][0].as<int64_t>()));
}

namespace {

// Claims as the three arrays of C2D_CLAIM_ARRAYS.
struct ClaimColumns {
  std::vector<std::string> ids, attempts, holders;

  void Add(const ClaimRef& c) {
    ids.push_back(std::to_string(c.id));
    attempts.push_back(std::to_string(c.attempt));
    holders.push_back(c.holder);
  }
  bool empty() const { return ids.empty(); }
};

nlohmann::json ClaimJson(const Outcome& o) {
  return {{"id", o.claim.id},
          {"attempt", o.claim.attempt},
          {"holder", o.claim.holder},
          {"error", WithoutNul(o.error)}};
}

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

absl::StatusOr<std::vector<int64_t>> Heartbeat(pg::Tx& tx, const std::vector<ClaimRef>& claims,
                                               std::chrono::milliseconds lease) {
  ClaimColumns c;
  for (const ClaimRef& claim : claims) c.Add(claim);
  std::vector<int64_t> held;
  for (const auto& row : tx.Exec(kHeartbeat, pg::TextArray(c.ids), pg::TextArray(c.attempts),
                                 pg::TextArray(c.holders), static_cast<int64_t>(lease.count()))) {
    held.push_back(row[0].as<int64_t>());
  }
  return held;
}

int OutcomeStatements(const std::vector<Outcome>& outcomes) {
  std::set<Outcome::Kind> kinds;
  for (const Outcome& o : outcomes) kinds.insert(o.kind);
  return static_cast<int>(kinds.size());
}

absl::StatusOr<std::vector<Recorded>> RecordOutcomes(pg::Tx& tx,
                                                     const std::vector<Outcome>& outcomes) {
  ClaimColumns succeeded;
  nlohmann::json failed = nlohmann::json::array(), released = nlohmann::json::array();
  for (const Outcome& o : outcomes) {
    switch (o.kind) {
      case Outcome::Kind::kSucceeded:
        succeeded.Add(o.claim);
        break;
      case Outcome::Kind::kFailed: {
        nlohmann::json j = ClaimJson(o);
        j["permanent"] = o.permanent;
        j["delay_ms"] = o.retry_delay.count();
        failed.push_back(std::move(j));
        break;
      }
      case Outcome::Kind::kReleased:
        released.push_back(ClaimJson(o));
        break;
    }
  }
  std::map<int64_t, State> changed;  // id -> new state
  if (!succeeded.empty()) {
    for (const auto& row :
         tx.Exec(kSucceeded, pg::TextArray(succeeded.ids), pg::TextArray(succeeded.attempts),
                 pg::TextArray(succeeded.holders))) {
      changed[row[0].as<int64_t>()] = State::kSucceeded;
    }
  }
  if (!failed.empty()) {
    for (const auto& row : tx.Exec(kFailed, Dump(failed))) {
      changed[row[0].as<int64_t>()] = ParseState(row[1].as<std::string>()).value_or(State::kFailed);
    }
  }
  if (!released.empty()) {
    for (const auto& row : tx.Exec(kRelease, Dump(released))) {
      changed[row[0].as<int64_t>()] = State::kAvailable;
    }
  }
  std::vector<Recorded> out;
  for (const Outcome& o : outcomes) {
    auto it = changed.find(o.claim.id);
    out.push_back(it == changed.end() ? Recorded{} : Recorded{true, it->second});
  }
  return out;
}

absl::StatusOr<std::vector<Rescued>> RescueExpired(pg::Tx& tx, int limit) {
  std::vector<Rescued> out;
  std::set<std::string> queues;
  for (const auto& row : tx.Exec(kRescue, limit)) {
    Rescued r{row[0].as<int64_t>(), row[1].as<std::string>(),
              ParseState(row[2].as<std::string>()).value_or(State::kAvailable)};
    if (r.state == State::kAvailable) queues.insert(r.queue);
    out.push_back(std::move(r));
  }
  for (const auto& q : queues) tx.Exec(kNotify, Channel(q));
  return out;
}

absl::StatusOr<std::vector<Depth>> QueueDepths(pg::Tx& tx) {
  std::vector<Depth> out;
  for (const auto& row : tx.Exec(kDepths)) {
    out.push_back(Depth{row[0].as<std::string>(),
                        ParseState(row[1].as<std::string>()).value_or(State::kAvailable),
                        row[2].as<int64_t>(), row[3].as<double>()});
  }
  return out;
}

}  // namespace c2d::jobs
