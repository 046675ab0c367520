// Redis 7: hiredis for the ACL users and counts, the host's redis-cli
// (redis-tools) for RDB dumps. A Redis server is one database: its link
// names database 0; login roles are ACL users; a dump goes back in at the
// server's start (tools/stacks/redis/c2d-redis loads restore.rdb).

#include <hiredis/hiredis.h>

#include <memory>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/common/status.h"
#include "services/dbprov/engine_ops.h"
#include "services/dbprov/provision_job.h"

namespace c2d::dbprov {
namespace {

constexpr int kConnectSeconds = 5;
constexpr int kCallSeconds = 30;

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

struct ContextFree {
  void operator()(redisContext* c) const { redisFree(c); }
};

// One connection, logged in as `user`; every call within its deadline.
class Connection {
 public:
  static absl::StatusOr<Connection> Open(const std::string& address, const std::string& user,
                                         const std::string& password) {
    const size_t colon = address.rfind(':');
    int port = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
      return absl::InvalidArgumentError(absl::StrCat("no port in address ", address));
    }
    const timeval connect{kConnectSeconds, 0}, call{kCallSeconds, 0};
    Connection c;
    c.ctx_.reset(redisConnectWithTimeout(address.substr(0, colon).c_str(), port, connect));
    if (c.ctx_ == nullptr) return absl::ResourceExhaustedError("cannot allocate a redis context");
    if (c.ctx_->err != 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", address, ": ", c.ctx_->errstr));
    }
    redisSetTimeout(c.ctx_.get(), call);
    C2D_RETURN_IF_ERROR(c.Call({"AUTH", user, password}).status());
    return c;
  }

  absl::StatusOr<Reply> Call(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const std::string& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    Reply r(static_cast<redisReply*>(
        redisCommandArgv(ctx_.get(), static_cast<int>(argv.size()), argv.data(), lens.data())));
    if (r == nullptr) {
      return absl::UnavailableError(absl::StrCat("redis ", args[0], ": ", ctx_->errstr));
    }
    if (r->type == REDIS_REPLY_ERROR) {
      return absl::UnavailableError(absl::StrCat("redis ", args[0], ": ", r->str));
    }
    return r;
  }

 private:
  std::unique_ptr<redisContext, ContextFree> ctx_;
};

// Keys in all of the server's databases, from INFO keyspace
// ("db0:keys=12,expires=0,avg_ttl=0").
absl::StatusOr<TableCounts> CountKeys(Connection& c) {
  C2D_ASSIGN_OR_RETURN(Reply r, c.Call({"INFO", "keyspace"}));
  int64_t keys = 0;
  for (absl::string_view line : absl::StrSplit(absl::string_view(r->str, r->len), '\n')) {
    const size_t at = line.find("keys=");
    if (!absl::StartsWith(line, "db") || at == absl::string_view::npos) continue;
    int64_t n = 0;
    if (absl::SimpleAtoi(line.substr(at + 5, line.find(',', at) - at - 5), &n)) keys += n;
  }
  return TableCounts{{"keys", keys}};
}

class Redis final : public EngineOps {
 public:
  std::map<std::string, std::string> ServerEnv(const std::string& admin,
                                               const Plan& plan) const override {
    // Memory for keys: three quarters of the plan's, the rest for the
    // server itself and the fork that writes snapshots.
    return {{"C2D_REDIS_PASSWORD", admin},
            {"C2D_REDIS_MAXMEMORY", std::to_string(plan.memory_bytes / 4 * 3)},
            {"C2D_REDIS_MAXCLIENTS", std::to_string(plan.max_connections)}};
  }

  absl::Status Ping(const ServerLogin& s) const override {
    C2D_ASSIGN_OR_RETURN(Connection c, Connection::Open(s.address, "default", s.admin));
    return c.Call({"PING"}).status();
  }

  absl::Status EnsureRoles(const ServerLogin& s, const v1::Database& d, const Logins& l,
                           const Plan&) const override {
    // Redis has no per-user connection limit: maxclients bounds them all.
    C2D_ASSIGN_OR_RETURN(Connection c, Connection::Open(s.address, "default", s.admin));
    for (const auto& [role, password] : {std::pair{"a", l.a}, std::pair{"b", l.b}}) {
      const std::string user = RoleBase(d.name()) + "_" + role;
      const bool login = MayLogIn(d, role);
      // Every key and channel, every command but the server's
      // administration (ACL, CONFIG, SHUTDOWN, REPLICAOF, DEBUG, …).
      C2D_RETURN_IF_ERROR(c.Call({"ACL", "SETUSER", user, "reset", login ? "on" : "off",
                                  ">" + password, "~*", "&*", "+@all", "-@admin"})
                              .status());
      if (!login) C2D_RETURN_IF_ERROR(c.Call({"CLIENT", "KILL", "USER", user}).status());
    }
    C2D_RETURN_IF_ERROR(c.Call({"ACL", "SAVE"}).status());
    // A server that started from a restored dump runs without its
    // append-only file until told (c2d-redis): every write is kept again.
    return c.Call({"CONFIG", "SET", "appendonly", "yes"}).status();
  }

  absl::StatusOr<DumpCounts> Dump(const ServerLogin& s, const v1::Database&, const Sink& write,
                                  const jobs::JobContext& ctx) const override {
    DumpCounts out;
    C2D_ASSIGN_OR_RETURN(out.before, Count(s));
    const size_t colon = s.address.rfind(':');
    // A snapshot the server forks for a replica, streamed as it comes.
    C2D_RETURN_IF_ERROR(
        RunTool({"redis-cli", "-h", s.address.substr(0, colon), "-p", s.address.substr(colon + 1),
                 "--user", "default", "--no-auth-warning", "--rdb", "-"},
                {{"REDISCLI_AUTH", s.admin}}, s.admin, &ctx, write));
    C2D_ASSIGN_OR_RETURN(out.after, Count(s));
    return out;
  }

  std::string LoadAtStart() const override { return "restore.rdb"; }

  absl::Status Load(const ServerLogin&, const v1::Database&, const std::string&, bool,
                    const jobs::JobContext&) const override {
    return absl::InternalError("a Redis dump is loaded at the server's start (LoadAtStart)");
  }

  absl::StatusOr<TableCounts> Count(const ServerLogin& s, const v1::Database&) const override {
    return Count(s);
  }

 private:
  static absl::StatusOr<TableCounts> Count(const ServerLogin& s) {
    C2D_ASSIGN_OR_RETURN(Connection c, Connection::Open(s.address, "default", s.admin));
    return CountKeys(c);
  }
};

}  // namespace

const EngineOps& RedisOps() {
  static const Redis ops;
  return ops;
}

}  // namespace c2d::dbprov
