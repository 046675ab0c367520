// Live logs: Server-Sent Events, or WebSocket on the same path. A stream
// costs no thread: it is a chain of asynchronous calls to the builder and
// the deployer (async_call.h) whose messages go to the client one at a
// time, the next read starting once the client took the previous event. A
// client that leaves cancels the call in flight.

#include <chrono>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/rpc/server.h"
#include "services/gateway/async_call.h"
#include "services/gateway/gateway.h"

namespace c2d::gateway {
namespace {

using namespace std::chrono_literals;

const char* StreamName(v1::LogStream s) {
  switch (s) {
    case v1::LOG_STREAM_STDERR:
      return "stderr";
    case v1::LOG_STREAM_SYSTEM:
      return "system";
    default:
      return "stdout";
  }
}

json LogJson(const v1::LogLine& l) {
  json j = {{"seq", l.seq()},
            {"time", Time(Micros(l.time()))},
            {"stream", StreamName(l.stream())},
            {"text", l.text()}};
  if (!l.instance_id().empty()) j["instance_id"] = l.instance_id();
  return j;
}

json EventJson(const v1::DeploymentEvent& e) {
  return {{"seq", e.seq()},
          {"time", Time(Micros(e.time()))},
          {"deployment_id", e.deployment_id()},
          {"instance_id", OrNull(e.instance_id())},
          {"kind", e.kind()},
          {"message", e.message()}};
}

// Last-Event-ID (or ?since=): "<prefix><seq>" -> seq; 0 when absent or of
// another prefix.
int64_t ResumeAfter(const httpd::Request& req, char prefix) {
  std::string id = req.Header("last-event-id");
  if (id.empty()) id = req.Query("since");
  int64_t n = 0;
  if (id.size() > 1 && id[0] == prefix && absl::SimpleAtoi(id.substr(1), &n) && n > 0) return n;
  if (prefix == 's' && absl::SimpleAtoi(id, &n) && n > 0) return n;
  return 0;
}

bool DeploymentEnded(const std::string& kind) {
  return kind == "deployment.live" || kind == "deployment.failed" ||
         kind == "deployment.superseded" || kind == "deployment.rolled_back" ||
         kind == "deployment.stopped";
}

using Starter = std::function<void(std::shared_ptr<httpd::Stream>, bool websocket)>;

// A streaming response that runs `start` over either transport.
httpd::Response StreamResponse(Starter start) {
  httpd::Response r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", "text/event-stream");
  r.headers.emplace_back("Cache-Control", "no-cache");
  r.stream = [start](std::shared_ptr<httpd::Stream> s) { start(std::move(s), false); };
  r.websocket = [start](std::shared_ptr<httpd::Stream> s) { start(std::move(s), true); };
  return r;
}

// One client's log stream: its events, sent one at a time, then an "end"
// event. The response ends when the feed goes, with the last callback
// holding it.
class Feed : public std::enable_shared_from_this<Feed> {
 public:
  Feed(const Gateway::Upstreams& up, std::shared_ptr<httpd::Stream> stream, bool websocket,
       std::string request_id, std::shared_ptr<void> slot)
      : up_(up),
        stream_(std::move(stream)),
        websocket_(websocket),
        request_id_(std::move(request_id)),
        slot_(std::move(slot)) {}
  virtual ~Feed() = default;

 protected:
  // Cancels the call in flight once the client leaves.
  void Watch() {
    stream_->OnClose([weak = weak_from_this()] {
      if (auto feed = weak.lock()) feed->scope_.Cancel();
    });
  }
  // False once the client has gone: the chain stops there.
  bool Open() { return !scope_.cancelled() && !stream_->Closed(); }

  // One event (an SSE frame, or a WebSocket message {"event","id"?,"data"});
  // `then(ok)` runs once the client took it.
  void Send(const std::string& event, const std::string& id, const json& data,
            httpd::Stream::Done then) {
    std::string frame;
    if (websocket_) {
      json m = {{"event", event}, {"data", data}};
      if (!id.empty()) m["id"] = id;
      frame = m.dump(-1, ' ', false, json::error_handler_t::replace);
    } else {
      if (!id.empty()) absl::StrAppend(&frame, "id: ", id, "\n");
      absl::StrAppend(&frame, "event: ", event,
                      "\ndata: ", data.dump(-1, ' ', false, json::error_handler_t::replace),
                      "\n\n");
    }
    stream_->Send(std::move(frame), std::move(then));
  }

  // The "end" event, then the end of the response.
  void Finish(json data) {
    if (!Open()) return;
    Send("end", "", data, [self = shared_from_this()](bool) { self->stream_->End(); });
  }

  std::unique_ptr<grpc::ClientContext> Context(std::chrono::milliseconds timeout) const {
    return rpc::NewClientContext(absl::FromChrono(timeout), request_id_);
  }

  // Sends the lines of a build log after `*after` as "build" events,
  // advancing `*after`; then `then` unless the client has gone.
  void BuildLines(const std::string& build_id, int64_t* after, bool follow,
                  std::function<void()> then) {
    v1::StreamBuildLogsRequest req;
    req.set_build_id(build_id);
    req.set_after_seq(*after);
    req.set_follow(follow);
    auto self = shared_from_this();
    StreamCall<v1::StreamBuildLogsRequest, v1::LogLine>::Start(
        Context(follow ? std::chrono::milliseconds(2h) : std::chrono::milliseconds(1min)),
        std::move(req), scope_,
        [builder = up_.builder](grpc::ClientContext* ctx, const v1::StreamBuildLogsRequest* r,
                                grpc::ClientReadReactor<v1::LogLine>* reactor) {
          builder->async()->StreamBuildLogs(ctx, r, reactor);
        },
        [self, after](const v1::LogLine& line, std::function<void(bool)> next) {
          const int64_t seq = line.seq();
          self->Send("build", absl::StrCat("b", seq), LogJson(line),
                     [after, seq, next = std::move(next)](bool ok) {
                       if (ok) *after = seq;
                       next(ok);
                     });
        },
        [self, then = std::move(then)](const grpc::Status&) {
          if (self->Open()) then();
        });
  }

  const Gateway::Upstreams up_;
  const std::shared_ptr<httpd::Stream> stream_;
  const bool websocket_;
  const std::string request_id_;
  const std::shared_ptr<void> slot_;  // the user's stream slot
  CancelScope scope_;
};

// GET /v1/deployments/{id}/logs: the build's lines (when the release has a
// build of its own), then the release's events until it is final.
class DeploymentFeed final : public Feed {
 public:
  struct Ask {
    std::string build_id, deployment_id;
    bool fixed_release = false;  // asked by dep_ id: the release does not change
    int64_t after_line = 0, after_event = 0;
  };
  DeploymentFeed(const Gateway::Upstreams& up, std::shared_ptr<httpd::Stream> stream,
                 bool websocket, std::string request_id, std::shared_ptr<void> slot, Ask ask)
      : Feed(up, std::move(stream), websocket, std::move(request_id), std::move(slot)),
        ask_(std::move(ask)) {}

  void Start() {
    Watch();
    if (ask_.build_id.empty()) {
      Events();
      return;
    }
    BuildLines(ask_.build_id, &ask_.after_line, /*follow=*/true,
               [self = Self()] { self->AwaitRelease(0); });
  }

 private:
  std::shared_ptr<DeploymentFeed> Self() {
    return std::static_pointer_cast<DeploymentFeed>(shared_from_this());
  }

  // The build is final: did it start a release? (The builder records it
  // just after; it is given up to 30 s.)
  void AwaitRelease(int tries) {
    v1::GetBuildRequest req;
    req.set_id(ask_.build_id);
    UnaryCall<v1::GetBuildRequest, v1::Build>(
        Context(up_.rpc_timeout), std::move(req), scope_,
        [builder = up_.builder](grpc::ClientContext* ctx, const v1::GetBuildRequest* r,
                                v1::Build* b, std::function<void(grpc::Status)> done) {
          builder->async()->GetBuild(ctx, r, b, std::move(done));
        },
        [self = Self(), tries](const grpc::Status& status, v1::Build b) {
          if (!self->Open()) return;
          if (status.ok()) self->build_ = std::move(b);
          const v1::Build& got = self->build_;
          const bool settled = !status.ok() || got.state() != v1::BUILD_STATE_SUCCEEDED ||
                               got.skip_deploy() || !got.deployment_id().empty();
          if (!settled && tries < 60) {
            self->up_.timers->After(500ms, [self, tries] {
              if (self->Open()) self->AwaitRelease(tries + 1);
            });
            return;
          }
          self->OnBuildFinal();
        });
  }

  void OnBuildFinal() {
    if (!ask_.fixed_release) ask_.deployment_id = build_.deployment_id();
    // The builder notes the hand-off after the final state, so the follow
    // before ended ahead of that line.
    BuildLines(ask_.build_id, &ask_.after_line, /*follow=*/false, [self = Self()] {
      self->final_state_ = EnumText(v1::BuildState_Name(self->build_.state()), 12);
      if (self->build_.state() != v1::BUILD_STATE_SUCCEEDED) {
        self->final_state_ = "build_" + self->final_state_;
      }
      self->Events();
    });
  }

  // The release's events until it is final.
  void Events() {
    if (ask_.deployment_id.empty()) {
      End();
      return;
    }
    v1::StreamDeploymentEventsRequest req;
    req.set_deployment_id(ask_.deployment_id);
    req.set_after_seq(ask_.after_event);
    req.set_follow(true);
    auto self = Self();
    StreamCall<v1::StreamDeploymentEventsRequest, v1::DeploymentEvent>::Start(
        Context(2h), std::move(req), scope_,
        [deployer = up_.deployer](grpc::ClientContext* ctx,
                                  const v1::StreamDeploymentEventsRequest* r,
                                  grpc::ClientReadReactor<v1::DeploymentEvent>* reactor) {
          deployer->async()->StreamDeploymentEvents(ctx, r, reactor);
        },
        [self](const v1::DeploymentEvent& e, std::function<void(bool)> next) {
          const bool last =
              e.deployment_id() == self->ask_.deployment_id && DeploymentEnded(e.kind());
          if (last) self->final_state_ = e.kind().substr(11);
          self->Send("deploy", absl::StrCat("d", e.seq()), EventJson(e),
                     [last, next = std::move(next)](bool ok) { next(ok && !last); });
        },
        [self](const grpc::Status&) { self->End(); });
  }

  void End() { Finish({{"state", final_state_}, {"deployment_id", OrNull(ask_.deployment_id)}}); }

  Ask ask_;
  v1::Build build_;
  std::string final_state_;
};

// GET /v1/services/{id}/logs: the service's runtime log, followed or not.
class ServiceFeed final : public Feed {
 public:
  ServiceFeed(const Gateway::Upstreams& up, std::shared_ptr<httpd::Stream> stream, bool websocket,
              std::string request_id, std::shared_ptr<void> slot, v1::StreamRuntimeLogsRequest req)
      : Feed(up, std::move(stream), websocket, std::move(request_id), std::move(slot)),
        req_(std::move(req)) {}

  void Start() {
    Watch();
    auto self = shared_from_this();
    StreamCall<v1::StreamRuntimeLogsRequest, v1::LogLine>::Start(
        Context(24h), req_, scope_,
        [deployer = up_.deployer](grpc::ClientContext* ctx, const v1::StreamRuntimeLogsRequest* r,
                                  grpc::ClientReadReactor<v1::LogLine>* reactor) {
          deployer->async()->StreamRuntimeLogs(ctx, r, reactor);
        },
        [self, this](const v1::LogLine& line, std::function<void(bool)> next) {
          Send("log", std::to_string(line.seq()), LogJson(line), std::move(next));
        },
        [self, this](const grpc::Status&) { Finish(json::object()); });
  }

 private:
  const v1::StreamRuntimeLogsRequest req_;
};

}  // namespace

httpd::Response Gateway::DeploymentLogs(Call& c) {
  std::string service_id;
  auto view = DeploymentView(c, c.req.params["id"], &service_id);
  if (!view.ok()) return FromStatus(view.status());
  const json& build = (*view)["build"];
  DeploymentFeed::Ask ask;
  ask.build_id = build.is_null() ? "" : build["id"].get<std::string>();
  ask.deployment_id =
      (*view)["deployment"].is_null() ? "" : (*view)["deployment"]["id"].get<std::string>();
  // The logs of the release asked for: a release of an image built for an
  // earlier one (a redeploy) has no build of its own to show.
  ask.fixed_release = ids::Valid(c.req.params["id"], "dep");
  if (ask.fixed_release && !ask.build_id.empty() && build["deployment_id"] != ask.deployment_id) {
    ask.build_id.clear();
  }
  // Resumption: build lines are "b<seq>", deployment events "d<seq>".
  ask.after_line = ResumeAfter(c.req, 'b');
  ask.after_event = ResumeAfter(c.req, 'd');
  if (ask.after_event > 0) ask.build_id.clear();  // the build part was seen whole
  auto slot = StreamSlot(c);
  if (!slot.ok()) return FromStatus(slot.status());
  return StreamResponse([up = upstreams(), request_id = c.request_id, slot = *slot, ask](
                            std::shared_ptr<httpd::Stream> s, bool websocket) {
    std::make_shared<DeploymentFeed>(up, std::move(s), websocket, request_id, slot, ask)->Start();
  });
}

httpd::Response Gateway::ServiceLogs(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  int tail = 100;
  if (const std::string t = c.req.Query("tail"); !t.empty()) {
    if (!absl::SimpleAtoi(t, &tail) || tail < 0 || tail > 10000) {
      return FromStatus(FieldError("tail", "must be 0-10000"));
    }
  }
  const std::string instance = c.req.Query("instance");
  if (!instance.empty() && !ids::Valid(instance, "ins")) {
    return FromStatus(FieldError("instance", "is not an instance id"));
  }
  const int64_t after = ResumeAfter(c.req, 's');
  v1::StreamRuntimeLogsRequest req;
  req.set_service_id(sp->first.id);
  req.set_instance_id(instance);
  req.set_after_seq(after);
  req.set_tail_lines(tail == 0 && after == 0 ? 1 : tail);
  req.set_follow(c.req.Query("follow") != "false");
  auto slot = StreamSlot(c);
  if (!slot.ok()) return FromStatus(slot.status());
  return StreamResponse([up = upstreams(), request_id = c.request_id, slot = *slot, req](
                            std::shared_ptr<httpd::Stream> s, bool websocket) {
    std::make_shared<ServiceFeed>(up, std::move(s), websocket, request_id, slot, req)->Start();
  });
}

}  // namespace c2d::gateway
