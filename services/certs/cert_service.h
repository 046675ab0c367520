#pragma once

// c2d.v1.CertService: domains and their certificates. Default domains
// (every routed hostname) are added by the leader's sweep (issuance.h);
// custom domains are added here and verified by the sweep (domains.h).

#include <grpcpp/grpcpp.h>

#include "libs/pg/pool.h"
#include "proto/c2d/v1/certs.grpc.pb.h"
#include "services/certs/config.h"

namespace c2d::certs {

class CertServiceImpl final : public v1::CertService::Service {
 public:
  CertServiceImpl(pg::Pool& pool, const Config& config) : pool_(pool), config_(config) {}

  grpc::Status AddDomain(grpc::ServerContext* context, const v1::AddDomainRequest* request,
                         v1::Domain* response) override;
  grpc::Status GetDomain(grpc::ServerContext* context, const v1::GetDomainRequest* request,
                         v1::Domain* response) override;
  grpc::Status DeleteDomain(grpc::ServerContext* context, const v1::DeleteDomainRequest* request,
                            v1::DeleteDomainResponse* response) override;

  grpc::Status ListDomains(grpc::ServerContext* context, const v1::ListDomainsRequest* request,
                           v1::ListDomainsResponse* response) override;
  grpc::Status GetCertificate(grpc::ServerContext* context,
                              const v1::GetCertificateRequest* request,
                              v1::Certificate* response) override;
  grpc::Status ListCertificates(grpc::ServerContext* context,
                                const v1::ListCertificatesRequest* request,
                                v1::ListCertificatesResponse* response) override;
  grpc::Status RenewNow(grpc::ServerContext* context, const v1::RenewNowRequest* request,
                        v1::Certificate* response) override;

 private:
  // A custom domain's required_record, from the configuration.
  void Complete(v1::Domain& domain) const;

  pg::Pool& pool_;
  const Config& config_;
};

}  // namespace c2d::certs
