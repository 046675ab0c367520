// c2d certs: serves c2d.v1.CertService, the certificate endpoint the ingress
// asks at each TLS handshake (cert_server.h), and works the "certs" queue
// (`issue_cert`); its leader checks custom domains' DNS records, gives every
// routed hostname a certificate and starts renewals that are due.

#include <fstream>

#include "libs/rpc/process.h"
#include "libs/rpc/server.h"
#include "services/certs/acme_issuer.h"
#include "services/certs/cert_server.h"
#include "services/certs/cert_service.h"
#include "services/certs/config.h"
#include "services/certs/domains.h"
#include "services/certs/internal_ca.h"
#include "services/certs/issuance.h"

int main() {
  using namespace c2d;
  auto process = rpc::Process::Init("certs");
  if (!process.ok()) return rpc::Process::Fail(process.status());
  auto config = certs::Config::FromEnv();
  if (!config.ok()) return rpc::Process::Fail(config.status());
  auto ca = certs::InternalCa::LoadOrCreate((*process)->pool(), *config->master_keys);
  if (!ca.ok()) return rpc::Process::Fail(ca.status());
  if (!config->ca_file.empty()) {
    std::ofstream(config->ca_file, std::ios::trunc) << ca->certificate_pem();
  }
  auto http = certs::CertServer::Start(config->http_addr, (*process)->pool(), *config->master_keys);
  if (!http.ok()) return rpc::Process::Fail(http.status());
  (*process)->AddReadyAddress("http", (*http)->address());
  (*process)->OnShutdown([&](std::chrono::milliseconds) { (*http)->Shutdown(); });
  auto credentials = rpc::ChannelCredentialsFromEnv();
  if (!credentials.ok()) return rpc::Process::Fail(credentials.status());
  std::unique_ptr<dns::Client> dns;
  if (!config->dns_addr.empty()) {
    dns = std::make_unique<dns::Client>(rpc::Channel(config->dns_addr, *credentials));
  }
  std::unique_ptr<certs::AcmeIssuer> acme;
  if (!config->acme_directory.empty()) {
    acme = std::make_unique<certs::AcmeIssuer>((*process)->pool(), *config, dns.get());
  }
  certs::Issuance issuance((*process)->pool(), *config, *ca, acme.get());
  issuance.RegisterJobs((*process)->AddWorker("certs"));
  certs::Verifier verifier((*process)->pool(), *config, [&](const std::string& hostname) {
    return issuance.IssuerOf(hostname);
  });
  (*process)->AddLeader(
      "certs.sweep", config->sweep_interval,
      [&] {
        verifier.Sweep();
        issuance.Sweep();
      },
      [&] { issuance.LostLeadership(); });
  certs::CertServiceImpl service((*process)->pool(), *config);
  return (*process)->Serve({{v1::CertService::service_full_name(), &service}});
}
