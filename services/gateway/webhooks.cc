#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"
#include "libs/crypto/hash.h"
#include "libs/http/client.h"
#include "libs/rpc/server.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "services/gateway/gateway.h"
#include "services/gateway/webhook_payload.h"

namespace c2d::gateway {

// ---- webhooks (DESIGN point 21)

namespace {

std::string WebhookAad(const std::string& hook_id) { return "c2d/webhook/" + hook_id; }

json WebhookJson(const Webhook& w) {
  return {{"id", w.id},
          {"provider", w.provider},
          {"url", absl::StrCat("/v1/webhooks/", w.provider, "/", w.id)}};
}

}  // namespace

httpd::Response Gateway::CreateWebhook(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kAdmin);
  if (!sp.ok()) return FromStatus(sp.status());
  auto body = ParseObject(c.req.body, {"provider", "secret"});
  if (!body.ok()) return FromStatus(body.status());
  std::string provider, secret;
  if (auto s = GetString(*body, "provider", "", &provider, 16); !s.ok()) return FromStatus(s);
  if (provider != "github" && provider != "gitlab") {
    return FromStatus(FieldError("provider", "must be github or gitlab"));
  }
  if (auto s = GetString(*body, "secret", "", &secret, 255); !s.ok()) return FromStatus(s);
  if (body->contains("secret") && secret.size() < 16) {
    return FromStatus(FieldError("secret", "must be at least 16 characters"));
  }
  if (secret.empty()) secret = http::Base64Url(crypto::RandomBytes(32));
  Webhook w{ids::New("hook"), sp->first.id, provider, {}};
  auto sealed = config_.master_keys->Seal(secret, WebhookAad(w.id));
  if (!sealed.ok()) return FromStatus(sealed.status());
  w.secret = std::move(*sealed);
  absl::Status st = pool_.Transact("create webhook", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(InsertWebhook(tx, w));
    return Audit(tx, {c.who.user_id,
                      c.who.token_id,
                      sp->second.id,
                      "webhook.create",
                      w.id,
                      c.request_id,
                      c.req.remote_addr,
                      {{"provider", provider}}});
  });
  if (absl::IsAlreadyExists(st)) {
    return Error(409, "already_exists",
                 absl::StrCat("service ", sp->first.name, " already has a ", provider, " webhook"),
                 "provider");
  }
  if (!st.ok()) return FromStatus(st);
  json out = WebhookJson(w);
  out["secret"] = secret;  // shown once
  return Json(201, out);
}

httpd::Response Gateway::ListWebhooks(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  auto hooks = pool_.Transact("webhooks",
                              [&](pg::Tx& tx) { return gateway::ListWebhooks(tx, sp->first.id); });
  if (!hooks.ok()) return FromStatus(hooks.status());
  json items = json::array();
  for (const Webhook& w : *hooks) items.push_back(WebhookJson(w));
  return Json(200, {{"webhooks", items}});
}

httpd::Response Gateway::ListDeliveries(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kViewer);
  if (!sp.ok()) return FromStatus(sp.status());
  auto size = PageSize(c.req);
  if (!size.ok()) return FromStatus(size.status());
  auto list = pool_.Transact(
      "deliveries", [&](pg::Tx& tx) { return gateway::ListDeliveries(tx, sp->first.id, *size); });
  if (!list.ok()) return FromStatus(list.status());
  json items = json::array();
  for (const Delivery& d : *list) {
    items.push_back({{"id", d.id},
                     {"webhook_id", d.webhook_id},
                     {"provider", d.provider},
                     {"delivery_id", d.delivery_id},
                     {"event", d.event},
                     {"ref", OrNull(d.ref)},
                     {"commit", OrNull(d.commit_sha)},
                     {"outcome", d.outcome},
                     {"build_id", OrNull(d.build_id)},
                     {"preview_service_id", OrNull(d.preview_service_id)},
                     {"preview_url", OrNull(d.preview_url)},
                     {"reason", OrNull(d.reason)},
                     {"received_at", Time(absl::ToUnixMicros(d.received_at))}});
  }
  return Json(200, {{"deliveries", items}});
}

httpd::Response Gateway::ReceiveWebhook(httpd::Request& req) {
  const std::string provider = req.params["provider"], hook_id = req.params["hook"];
  const std::string request_id = req.Header("x-request-id");
  log::Scope scope(
      nlohmann::json{{"request_id", request_id}, {"webhook_id", hook_id.substr(0, 40)}});
  if ((provider != "github" && provider != "gitlab") || !ids::Valid(hook_id, "hook")) {
    return Error(404, "not_found", "no such webhook");
  }
  auto hook =
      pool_.Transact("webhook", [&](pg::Tx& tx) { return GetWebhook(tx, hook_id, provider); });
  if (absl::IsNotFound(hook.status())) return Error(404, "not_found", "no such webhook");
  if (!hook.ok()) return FromStatus(hook.status());
  auto secret = config_.master_keys->Open(hook->secret, WebhookAad(hook_id));
  if (!secret.ok()) return FromStatus(secret.status());
  const bool github = provider == "github";
  DeliveryHeaders headers{req.Header(github ? "x-hub-signature-256" : "x-gitlab-token"),
                          req.Header(github ? "x-github-event" : "x-gitlab-event"),
                          req.Header(github ? "x-github-delivery" : "x-gitlab-event-uuid")};
  // The signature first: only the hook's sender may spend its rate limit.
  if (auto v = VerifyDelivery(provider, headers, *secret, req.body); !v.ok()) return FromStatus(v);
  if (!hook_rate_.Take(hook_id)) {
    httpd::Response r =
        Error(429, "rate_limited", "too many deliveries for this webhook; retry later");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  const std::string& event = headers.event;
  if (headers.delivery.empty() || headers.delivery.size() > 200) {
    return Error(400, "invalid_argument", "the delivery carries no delivery id header");
  }
  auto service = pool_.Transact(
      "service", [&](pg::Tx& tx) { return gateway::GetService(tx, hook->service_id); });
  if (!service.ok()) return FromStatus(service.status());
  Delivery d{ids::New("whd"), hook_id, provider, headers.delivery, event.substr(0, 100), "", "",
             "ignored",       "",      {}};
  std::string why;
  if (event == "push" || event == "Push Hook") {
    auto push = ParsePush(provider, req.body);
    if (!push.ok()) return FromStatus(push.status());
    d.ref = push->ref.substr(0, 255);
    d.commit_sha = push->commit;
    if (d.ref != "refs/heads/" + service->source.branch()) {
      why = absl::StrCat("a push to ", d.ref, ", not to ", service->source.branch());
    } else if (!service->auto_deploy) {
      why = "auto_deploy is off";
    } else if (d.commit_sha.empty()) {
      why = "no commit to build (a deleted branch?)";
    } else {
      d.outcome = "accepted";
    }
  } else if (event == "pull_request" || event == "Merge Request Hook") {
    auto pr = ParsePullRequest(provider, req.body);
    if (!pr.ok()) return FromStatus(pr.status());
    return ReceivePullRequest(req, *service, std::move(d), *pr);
  } else {
    why = absl::StrCat("event ", event.empty() ? "(none)" : event,
                       " is neither a push nor a pull request");
  }
  return RecordDelivery(req, *service, d, why);
}

httpd::Response Gateway::RecordDelivery(httpd::Request& req, const Service& service, Delivery d,
                                        const std::string& why) {
  const std::string& request_id = req.Header("x-request-id");
  const std::string& hook_id = d.webhook_id;
  const std::string& delivery_id = d.delivery_id;
  if (d.outcome != "accepted") d.reason = why;
  auto fresh = pool_.Transact("delivery", [&](pg::Tx& tx) { return InsertDelivery(tx, d); });
  if (!fresh.ok()) return FromStatus(fresh.status());
  if (!*fresh) {
    // A redelivery: answered, never built twice.
    return Json(200, {{"status", "duplicate"}, {"delivery_id", delivery_id}});
  }
  if (d.outcome != "accepted") {
    log::Info("webhook delivery ignored", {{"reason", why}});
    httpd::Response r;
    r.status = 204;
    return r;
  }
  auto spec = Spec(service, request_id);
  if (!spec.ok()) return FromStatus(spec.status());
  v1::StartBuildRequest start;
  start.set_service_id(service.id);
  auto source = BuildSource(service);
  if (!source.ok()) return FromStatus(source.status());
  *start.mutable_source() = std::move(*source);
  start.mutable_source()->set_commit(d.commit_sha);
  *start.mutable_settings() = service.build;
  *start.mutable_spec() = *spec;
  start.set_trigger(v1::BUILD_TRIGGER_WEBHOOK);
  start.set_requested_by(hook_id);
  grpc::ClientContext ctx;
  Context(ctx, request_id);
  v1::StartBuildResponse started;
  if (auto g = builder_->StartBuild(&ctx, start, &started); !g.ok()) {
    // Forget the delivery, so the sender's retry can start the build.
    (void)pool_.Transact("delivery", [&](pg::Tx& tx) { return DeleteDelivery(tx, d.id); });
    return FromStatus(rpc::FromGrpc(g));
  }
  absl::Status st = pool_.Transact("delivery", [&](pg::Tx& tx) -> absl::Status {
    C2D_RETURN_IF_ERROR(SetDeliveryBuild(tx, d.id, started.build().id()));
    return Audit(tx, {"",
                      "",
                      service.project_id,
                      "deployment.create",
                      started.build().id(),
                      request_id,
                      req.remote_addr,
                      {{"webhook", hook_id}, {"commit", d.commit_sha}, {"delivery", delivery_id}}});
  });
  if (!st.ok()) return FromStatus(st);
  return Json(202, {{"status", "accepted"}, {"build_id", started.build().id()}});
}

}  // namespace c2d::gateway
