// Custom domains: a service served under the user's own hostname. The
// certs service keeps them (and their certificates); the answer to a POST
// names the DNS record to create, and the domain goes pending_dns ->
// issuing -> active as the record is found and the certificate issued.

#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/rpc/status.h"
#include "services/gateway/gateway.h"

namespace c2d::gateway {
namespace {

json DomainJson(const v1::Domain& d) {
  json j = {{"id", d.id()},
            {"service_id", d.service_id()},
            {"hostname", d.hostname()},
            {"kind", EnumText(v1::DomainKind_Name(d.kind()), 12)},
            {"state", EnumText(v1::DomainState_Name(d.state()), 13)},
            {"error", OrNull(d.error())},
            {"certificate_id", OrNull(d.certificate_id())},
            {"created_at", Time(Micros(d.created_at()))},
            {"verified_at", d.has_verified_at() ? Time(Micros(d.verified_at())) : json(nullptr)}};
  if (d.has_required_record()) {
    j["dns_record"] = {{"type", d.required_record().type()},
                       {"name", d.required_record().name()},
                       {"value", d.required_record().value()}};
  } else {
    j["dns_record"] = nullptr;
  }
  return j;
}

}  // namespace

absl::StatusOr<v1::Domain> Gateway::FindDomain(Call& c, const std::string& id, Role min) {
  const absl::Status not_found =
      absl::NotFoundError(absl::StrCat("domain ", id.substr(0, 64), " does not exist"));
  if (!ids::Valid(id, "dom")) return not_found;
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::GetDomainRequest req;
  req.set_id(id);
  v1::Domain d;
  if (auto g = certs_->GetDomain(&ctx, req, &d); !g.ok()) {
    absl::Status s = rpc::FromGrpc(g);
    return absl::IsNotFound(s) ? not_found : s;
  }
  // Another tenant's domain is "not found", like anything else of theirs.
  auto sp = AuthorizeService(c, d.service_id(), min);
  if (absl::IsNotFound(sp.status())) return not_found;
  if (!sp.ok()) return sp.status();
  return d;
}

httpd::Response Gateway::CreateDomain(Call& c) {
  auto sp = AuthorizeService(c, c.req.params["id"], Role::kDeveloper);
  if (!sp.ok()) return FromStatus(sp.status());
  auto body = ParseObject(c.req.body, {"hostname"});
  if (!body.ok()) return FromStatus(body.status());
  std::string hostname;
  if (auto s = GetString(*body, "hostname", "", &hostname, 300); !s.ok()) return FromStatus(s);
  if (hostname.empty()) return FromStatus(FieldError("hostname", "is required"));
  const Service& s = sp->first;
  if (s.type == v1::SERVICE_TYPE_WORKER) {
    return Error(409, "failed_precondition",
                 absl::StrCat("service ", s.name, " is a worker: it serves no HTTP, so no domain"),
                 "hostname");
  }
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::AddDomainRequest req;
  req.set_service_id(s.id);
  req.set_project_id(s.project_id);
  req.set_hostname(hostname);
  req.set_kind(v1::DOMAIN_KIND_CUSTOM);
  req.set_cname_target(config_.AppHostname(s.name, s.project_name));
  v1::Domain d;
  if (auto g = certs_->AddDomain(&ctx, req, &d); !g.ok()) {
    absl::Status st = rpc::FromGrpc(g);
    // The per-service limit is a conflict to resolve, not a rate to wait out.
    if (absl::IsResourceExhausted(st))
      return Error(409, "limit_reached", std::string(st.message()));
    return FromStatus(st);
  }
  if (auto a =
          AuditMutation(c, s.project_id, "domain.create", d.id(), {{"hostname", d.hostname()}});
      !a.ok()) {
    return FromStatus(a);
  }
  json out = DomainJson(d);
  out["note"] =
      absl::StrCat("create the DNS record ", d.required_record().type(), " ", d.hostname(), " -> ",
                   d.required_record().value(), "; c2d checks for it, then issues a certificate");
  httpd::Response r = Json(201, out);
  r.headers.emplace_back("Location", "/v1/domains/" + d.id());
  return r;
}

httpd::Response Gateway::ListDomains(Call& c) {
  return ServicePage<v1::ListDomainsRequest, v1::ListDomainsResponse>(
      c, *certs_, &v1::CertService::Stub::ListDomains, "domains",
      [](const v1::ListDomainsResponse& r) {
        json items = json::array();
        for (const v1::Domain& d : r.domains()) items.push_back(DomainJson(d));
        return items;
      });
}

httpd::Response Gateway::GetDomain(Call& c) {
  auto d = FindDomain(c, c.req.params["id"], Role::kViewer);
  if (!d.ok()) return FromStatus(d.status());
  return Json(200, DomainJson(*d));
}

httpd::Response Gateway::DeleteDomain(Call& c) {
  auto d = FindDomain(c, c.req.params["id"], Role::kDeveloper);
  if (!d.ok()) return FromStatus(d.status());
  grpc::ClientContext ctx;
  Context(ctx, c);
  v1::DeleteDomainRequest req;
  req.set_id(d->id());
  v1::DeleteDomainResponse resp;
  if (auto g = certs_->DeleteDomain(&ctx, req, &resp); !g.ok()) {
    return FromStatus(rpc::FromGrpc(g));
  }
  if (auto a = AuditMutation(c, d->project_id(), "domain.delete", d->id(),
                             {{"hostname", d->hostname()}});
      !a.ok()) {
    return FromStatus(a);
  }
  return Json(200, {{"id", d->id()},
                    {"hostname", d->hostname()},
                    {"deleted", true},
                    {"note", "the ingress stops serving it within a few seconds"}});
}

}  // namespace c2d::gateway
