#include "services/certs/cert_service.h"

#include "libs/common/ids.h"
#include "libs/common/status.h"
#include "libs/rpc/status.h"
#include "libs/rpc/validate.h"
#include "services/certs/domains.h"
#include "services/certs/store.h"

namespace c2d::certs {
namespace {

constexpr pg::Statement kRenewNow{"certs_renew_now", R"sql(
UPDATE certificates SET next_renewal_at = now(), renewal_attempts = 0, updated_at = now()
WHERE id = $1 RETURNING id)sql"};

grpc::Status CheckPage(const v1::PageRequest& page, const char* prefix, int* size) {
  auto s = rpc::PageSize(page);
  if (!s.ok()) return rpc::ToGrpc(s.status());
  if (!page.page_token().empty() && !ids::Valid(page.page_token(), prefix)) {
    return rpc::ToGrpc(rpc::InvalidField("page.page_token", "is not a token from a previous page"));
  }
  *size = *s;
  return grpc::Status::OK;
}

}  // namespace

void CertServiceImpl::Complete(v1::Domain& domain) const {
  if (domain.kind() != v1::DOMAIN_KIND_CUSTOM) return;
  *domain.mutable_required_record() =
      RequiredRecord(domain.hostname(), domain.cname_target(), config_.public_ipv4);
}

grpc::Status CertServiceImpl::AddDomain(grpc::ServerContext*, const v1::AddDomainRequest* request,
                                        v1::Domain* response) {
  if (request->kind() != v1::DOMAIN_KIND_CUSTOM) {
    return rpc::ToGrpc(rpc::InvalidField(
        "kind", "must be DOMAIN_KIND_CUSTOM: default domains follow the routed hostnames"));
  }
  if (!ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(rpc::InvalidField("service_id", "is not a service id"));
  }
  if (!ids::Valid(request->project_id(), "prj")) {
    return rpc::ToGrpc(rpc::InvalidField("project_id", "is not a project id"));
  }
  auto hostname = CustomHostname(request->hostname(), config_.base_domain);
  if (!hostname.ok())
    return rpc::ToGrpc(rpc::InvalidField("hostname", hostname.status().message()));
  // (The gateway sets it: the service's default hostname.)
  if (request->cname_target().empty() || request->cname_target().size() > 253) {
    return rpc::ToGrpc(rpc::InvalidField("cname_target", "must be the service's hostname"));
  }
  v1::AddDomainRequest add = *request;
  add.set_hostname(*hostname);
  auto domain = pool_.Transact("add domain", [&](pg::Tx& tx) {
    return certs::AddCustomDomain(tx, add, config_.max_custom_domains);
  });
  // Another service's claim that was never verified yields to one whose
  // record is in place already: nobody can hold a name they do not control.
  if (absl::IsAlreadyExists(domain.status()) && !config_.dns_resolver.empty() &&
      CheckRecords(dns::Resolver(config_.dns_resolver), add.hostname(), add.cname_target(),
                   config_.public_ipv4)
          .ok()) {
    domain = pool_.Transact("take over domain", [&](pg::Tx& tx) -> absl::StatusOr<v1::Domain> {
      C2D_ASSIGN_OR_RETURN(bool released,
                           ReleaseUnverifiedClaim(tx, add.hostname(), add.service_id()));
      if (!released) return domain.status();
      return certs::AddCustomDomain(tx, add, config_.max_custom_domains);
    });
  }
  if (!domain.ok()) return rpc::ToGrpc(domain.status());
  *response = std::move(*domain);
  Complete(*response);
  return grpc::Status::OK;
}

grpc::Status CertServiceImpl::GetDomain(grpc::ServerContext*, const v1::GetDomainRequest* request,
                                        v1::Domain* response) {
  if (!ids::Valid(request->id(), "dom")) {
    return rpc::ToGrpc(rpc::InvalidField("id", "is not a domain id"));
  }
  auto domain =
      pool_.Read("domain", [&](pg::Tx& tx) { return certs::GetDomain(tx, request->id()); });
  if (!domain.ok()) return rpc::ToGrpc(domain.status());
  *response = std::move(*domain);
  Complete(*response);
  return grpc::Status::OK;
}

grpc::Status CertServiceImpl::DeleteDomain(grpc::ServerContext*,
                                           const v1::DeleteDomainRequest* request,
                                           v1::DeleteDomainResponse*) {
  if (!ids::Valid(request->id(), "dom")) {
    return rpc::ToGrpc(rpc::InvalidField("id", "is not a domain id"));
  }
  return rpc::ToGrpc(pool_.Transact(
      "delete domain", [&](pg::Tx& tx) { return certs::DeleteDomain(tx, request->id()); }));
}

grpc::Status CertServiceImpl::ListDomains(grpc::ServerContext*,
                                          const v1::ListDomainsRequest* request,
                                          v1::ListDomainsResponse* response) {
  const bool by_service = ids::Valid(request->service_id(), "svc");
  const bool by_project = ids::Valid(request->project_id(), "prj");
  if (by_service == by_project || (!by_service && !request->service_id().empty()) ||
      (!by_project && !request->project_id().empty())) {
    return rpc::ToGrpc(rpc::InvalidField("service_id", "exactly one of service_id and project_id"));
  }
  int size = 0;
  if (grpc::Status s = CheckPage(request->page(), "dom", &size); !s.ok()) return s;
  auto page =
      pool_.Read("domains", [&](pg::Tx& tx) { return certs::ListDomains(tx, *request, size); });
  if (!page.ok()) return rpc::ToGrpc(page.status());
  *response = std::move(*page);
  for (v1::Domain& d : *response->mutable_domains()) Complete(d);
  return grpc::Status::OK;
}

grpc::Status CertServiceImpl::GetCertificate(grpc::ServerContext*,
                                             const v1::GetCertificateRequest* request,
                                             v1::Certificate* response) {
  if (!ids::Valid(request->id(), "crt")) {
    return rpc::ToGrpc(rpc::InvalidField("id", "is not a certificate id"));
  }
  auto cert = pool_.Read("certificate",
                         [&](pg::Tx& tx) { return certs::GetCertificate(tx, request->id()); });
  if (!cert.ok()) return rpc::ToGrpc(cert.status());
  *response = std::move(*cert);
  return grpc::Status::OK;
}

grpc::Status CertServiceImpl::ListCertificates(grpc::ServerContext*,
                                               const v1::ListCertificatesRequest* request,
                                               v1::ListCertificatesResponse* response) {
  if (!request->service_id().empty() && !ids::Valid(request->service_id(), "svc")) {
    return rpc::ToGrpc(rpc::InvalidField("service_id", "is not a service id"));
  }
  if (!request->domain_id().empty() && !ids::Valid(request->domain_id(), "dom")) {
    return rpc::ToGrpc(rpc::InvalidField("domain_id", "is not a domain id"));
  }
  int size = 0;
  if (grpc::Status s = CheckPage(request->page(), "crt", &size); !s.ok()) return s;
  auto page = pool_.Read("certificates",
                         [&](pg::Tx& tx) { return certs::ListCertificates(tx, *request, size); });
  if (!page.ok()) return rpc::ToGrpc(page.status());
  *response = std::move(*page);
  return grpc::Status::OK;
}

grpc::Status CertServiceImpl::RenewNow(grpc::ServerContext*, const v1::RenewNowRequest* request,
                                       v1::Certificate* response) {
  if (!ids::Valid(request->certificate_id(), "crt")) {
    return rpc::ToGrpc(rpc::InvalidField("certificate_id", "is not a certificate id"));
  }
  auto cert = pool_.Transact("renew now", [&](pg::Tx& tx) -> absl::StatusOr<v1::Certificate> {
    if (tx.Exec(kRenewNow, request->certificate_id()).empty()) {
      return absl::NotFoundError("certificate not found");
    }
    C2D_RETURN_IF_ERROR(EnqueueIssue(tx, request->certificate_id()));
    return certs::GetCertificate(tx, request->certificate_id());
  });
  if (!cert.ok()) return rpc::ToGrpc(cert.status());
  *response = std::move(*cert);
  return grpc::Status::OK;
}

}  // namespace c2d::certs
