#pragma once

// c2d.v1.CertService: domains and their certificates. Default domains
// (every routed hostname) are added by the leader's sweep (issuance.h);
// custom domains (AddDomain, DeleteDomain) answer UNIMPLEMENTED until ACME
// issuance is wired in.

#include <grpcpp/grpcpp.h>

#include "libs/pg/pool.h"
#include "proto/c2d/v1/certs.grpc.pb.h"

namespace c2d::certs {

class CertServiceImpl final : public v1::CertService::Service {
 public:
  explicit CertServiceImpl(pg::Pool& pool) : pool_(pool) {}

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
  pg::Pool& pool_;
};

}  // namespace c2d::certs
