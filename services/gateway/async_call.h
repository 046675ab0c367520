#pragma once

// gRPC calls without a thread of their own, for the gateway's live log
// streams (thousands may be open; each must cost sockets and memory, not
// threads): a server-streaming call read one message at a time at the pace
// of its consumer, a unary call with a callback, and timers, all on gRPC's
// and one timer thread.

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_callback.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace c2d::gateway {

// Cancels whichever call of a chain is running. Thread-safe.
class CancelScope {
 public:
  // The call now running; false (and the call is cancelled) when the scope
  // was cancelled already.
  bool Enter(grpc::ClientContext* ctx) {
    absl::MutexLock lock(&mu_);
    if (cancelled_) {
      ctx->TryCancel();
      return false;
    }
    ctx_ = ctx;
    return true;
  }
  // That call has ended (its context is about to go).
  void Leave() {
    absl::MutexLock lock(&mu_);
    ctx_ = nullptr;
  }
  void Cancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    if (ctx_ != nullptr) ctx_->TryCancel();
  }
  bool cancelled() {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

 private:
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// A server-streaming call read one message at a time. Each message goes to
// `on_message` with a `next` to call exactly once when it has been dealt
// with (typically from a send's callback): next(true) reads the next one,
// next(false) cancels the call. `on_done` runs once, last, with the call's
// status (CANCELLED after next(false) or the scope's Cancel). The call
// deletes itself after on_done. Callbacks run on gRPC's threads and must
// not block.
template <class Req, class Msg>
class StreamCall final : public grpc::ClientReadReactor<Msg> {
 public:
  using Next = std::function<void(bool more)>;
  using MessageFn = std::function<void(const Msg&, Next)>;
  using DoneFn = std::function<void(const grpc::Status&)>;
  // Begins the call, e.g. stub->async()->StreamX(ctx, req, reactor).
  using Begin =
      std::function<void(grpc::ClientContext*, const Req*, grpc::ClientReadReactor<Msg>*)>;

  static void Start(std::unique_ptr<grpc::ClientContext> ctx, Req req, CancelScope& scope,
                    const Begin& begin, MessageFn on_message, DoneFn on_done) {
    auto* call = new StreamCall(std::move(ctx), std::move(req), scope, std::move(on_message),
                                std::move(on_done));
    begin(call->ctx_.get(), &call->req_, call);
    // The hold lets `next` start reads from outside a reaction; it goes
    // once no read will follow.
    call->AddHold();
    call->StartRead(&call->msg_);
    scope.Enter(call->ctx_.get());  // when cancelled already, the call ends at once
    call->StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      this->RemoveHold();
      return;
    }
    on_message_(msg_, [this](bool more) {
      if (more) {
        this->StartRead(&msg_);
        return;
      }
      ctx_->TryCancel();
      this->RemoveHold();
    });
  }

  void OnDone(const grpc::Status& status) override {
    scope_.Leave();
    on_done_(status);
    delete this;
  }

 private:
  StreamCall(std::unique_ptr<grpc::ClientContext> ctx, Req req, CancelScope& scope,
             MessageFn on_message, DoneFn on_done)
      : ctx_(std::move(ctx)),
        req_(std::move(req)),
        scope_(scope),
        on_message_(std::move(on_message)),
        on_done_(std::move(on_done)) {}

  std::unique_ptr<grpc::ClientContext> ctx_;
  Req req_;
  Msg msg_;
  CancelScope& scope_;  // outlives the call (its owner waits for on_done)
  MessageFn on_message_;
  DoneFn on_done_;
};

// A unary call whose outcome goes to `done(status, response)` on a gRPC
// thread (it must not block).
template <class Req, class Resp>
void UnaryCall(std::unique_ptr<grpc::ClientContext> ctx, Req req, CancelScope& scope,
               const std::function<void(grpc::ClientContext*, const Req*, Resp*,
                                        std::function<void(grpc::Status)>)>& begin,
               std::function<void(const grpc::Status&, Resp)> done) {
  struct State {
    std::unique_ptr<grpc::ClientContext> ctx;
    Req req;
    Resp resp;
  };
  auto state = std::make_shared<State>(State{std::move(ctx), std::move(req), Resp()});
  if (!scope.Enter(state->ctx.get())) {
    done(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"), Resp());
    return;
  }
  begin(state->ctx.get(), &state->req, &state->resp,
        [state, &scope, done = std::move(done)](grpc::Status status) {
          scope.Leave();
          done(status, std::move(state->resp));
        });
}

// Runs functions after a delay on one thread shared by all their users.
class Timers {
 public:
  Timers() : work_(ioc_.get_executor()), thread_([this] { ioc_.run(); }) {}
  // Pending functions are dropped without running.
  ~Timers() {
    work_.reset();
    ioc_.stop();
    thread_.join();
  }
  Timers(const Timers&) = delete;
  Timers& operator=(const Timers&) = delete;

  // Runs `fn` on the timer thread after `delay`; it must not block.
  void After(std::chrono::milliseconds delay, std::function<void()> fn) {
    auto timer = std::make_shared<boost::asio::steady_timer>(ioc_, delay);
    timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code& ec) {
      if (!ec) fn();
    });
  }

 private:
  boost::asio::io_context ioc_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace c2d::gateway
