#include "services/builder/build_log.h"

#include <algorithm>

#include "absl/strings/str_replace.h"
#include "libs/common/log.h"

namespace c2d::builder {
namespace {
constexpr absl::Duration kFlushEvery = absl::Milliseconds(200);
// Values this short would redact ordinary words; they are not secrets worth
// the name and are left alone.
constexpr size_t kMinSecretLength = 4;
}  // namespace

BuildLog::BuildLog(pg::Pool& pool, std::string build_id, std::vector<std::string> secrets)
    : pool_(pool), build_id_(std::move(build_id)) {
  for (auto& s : secrets) {
    if (s.size() >= kMinSecretLength) secrets_.push_back(std::move(s));
  }
  std::sort(secrets_.begin(), secrets_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  auto last =
      pool_.Transact("read last log line", [&](pg::Tx& tx) { return LastLogSeq(tx, build_id_); });
  {
    absl::MutexLock lock(&mu_);
    next_seq_ = last.ok() ? *last + 1 : 1;
  }
  flusher_ = std::thread([this] { FlushLoop(); });
}

BuildLog::~BuildLog() { Close(); }

std::string BuildLog::Redact(absl::string_view text) const {
  std::string out(text);
  for (const std::string& s : secrets_) out = absl::StrReplaceAll(out, {{s, "[redacted]"}});
  return out;
}

void BuildLog::Line(absl::string_view stream, absl::string_view text) {
  std::string clean = Redact(text);
  absl::MutexLock lock(&mu_);
  // Long lines are split, not cut, so nothing is lost.
  for (size_t i = 0; i == 0 || i < clean.size(); i += 8000) {
    pending_.push_back(LogRow{0, std::string(stream), clean.substr(i, 8000), 0});
  }
}

void BuildLog::Flush() {
  absl::MutexLock writer(&write_mu_);
  std::vector<LogRow> rows;
  int64_t first = 0;
  {
    absl::MutexLock lock(&mu_);
    rows.swap(pending_);
    first = next_seq_;
    next_seq_ += static_cast<int64_t>(rows.size());
  }
  if (rows.empty()) return;
  // Retry briefly through a database blip; a build log is worth a few seconds.
  for (int attempt = 0; attempt < 20; ++attempt) {
    absl::Status s = pool_.Transact(
        "write build log", [&](pg::Tx& tx) { return AppendLogs(tx, build_id_, first, rows); });
    if (s.ok() || absl::IsAlreadyExists(s)) return;
    if (attempt == 19) {
      log::Error("build log lines lost", {{"build_id", build_id_}, {"error", s.ToString()}});
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
}

void BuildLog::FlushLoop() {
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (mu_.AwaitWithTimeout(absl::Condition(&closed_), kFlushEvery)) return;
    }
    Flush();
  }
}

void BuildLog::Close() {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
  }
  flusher_.join();
  Flush();
}

}  // namespace c2d::builder
