#include "services/certs/acme_issuer.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "libs/common/ids.h"
#include "libs/common/log.h"
#include "libs/common/status.h"

namespace c2d::certs {
namespace {

constexpr pg::Statement kAccount{"certs_acme_account", R"sql(
SELECT id, coalesce(account_url, ''), account_key_key_id, account_key_wrapped_key,
       account_key_nonce, account_key_ciphertext
FROM acme_accounts WHERE directory_url = $1 AND state <> 'deactivated')sql"};
constexpr pg::Statement kInsertAccount{"certs_acme_account_insert", R"sql(
INSERT INTO acme_accounts (id, directory_url, email, account_key_key_id, account_key_wrapped_key,
                           account_key_nonce, account_key_ciphertext)
VALUES ($1, $2, NULLIF($3, ''), $4, decode($5, 'hex'), decode($6, 'hex'), decode($7, 'hex'))
ON CONFLICT (directory_url) WHERE state <> 'deactivated' DO NOTHING)sql"};
constexpr pg::Statement kRegistered{"certs_acme_account_registered", R"sql(
UPDATE acme_accounts SET account_url = $2, state = 'valid', updated_at = now() WHERE id = $1)sql"};

constexpr pg::Statement kForgetAccount{"certs_acme_account_forget", R"sql(
UPDATE acme_accounts SET account_url = NULL, state = 'unregistered', updated_at = now()
WHERE id = $1)sql"};

constexpr pg::Statement kOrderLoad{"certs_order_load", R"sql(
SELECT coalesce(acme_order_url, ''), order_key_key_id, order_key_wrapped_key, order_key_nonce,
       order_key_ciphertext
FROM certificates WHERE id = $1)sql"};
constexpr pg::Statement kOrderStore{"certs_order_store", R"sql(
UPDATE certificates
SET acme_order_url = $2, order_key_key_id = $3, order_key_wrapped_key = decode($4, 'hex'),
    order_key_nonce = decode($5, 'hex'), order_key_ciphertext = decode($6, 'hex'),
    acme_account_id = $7
WHERE id = $1)sql"};
constexpr pg::Statement kOrderClear{"certs_order_clear", R"sql(
UPDATE certificates SET acme_order_url = NULL, order_key_key_id = NULL,
  order_key_wrapped_key = NULL, order_key_nonce = NULL, order_key_ciphertext = NULL
WHERE id = $1)sql"};

constexpr pg::Statement kChallengePut{"certs_challenge_put", R"sql(
INSERT INTO acme_http_challenges (token, key_authorization, certificate_id) VALUES ($1, $2, $3)
ON CONFLICT (token) DO UPDATE SET key_authorization = EXCLUDED.key_authorization)sql"};
constexpr pg::Statement kChallengeClear{
    "certs_challenge_clear", "DELETE FROM acme_http_challenges WHERE certificate_id = $1"};

std::string AccountAad(const std::string& id) { return "c2d/certs/account/" + id; }
std::string OrderAad(const std::string& id) { return "c2d/certs/order/" + id; }

acme::Options ClientOptions(const Config& c) {
  acme::Options o;
  o.directory_url = c.acme_directory;
  o.ca_file = c.acme_ca_file;
  return o;
}

}  // namespace

absl::StatusOr<acme::Client*> AcmeIssuer::Account() {
  absl::MutexLock lock(&mu_);
  if (client_ != nullptr && !client_->account_url().empty()) return client_.get();
  const crypto::MasterKeys& keys = *config_.master_keys;
  auto stored = pool_.Read("acme account", [&](pg::Tx& tx) -> absl::StatusOr<pqxx::result> {
    return tx.Exec(kAccount, config_.acme_directory);
  });
  if (!stored.ok()) return stored.status();
  if (stored->empty()) {  // made once per directory; a racing replica's row wins
    C2D_ASSIGN_OR_RETURN(crypto::EcKey key, crypto::EcKey::Generate());
    C2D_ASSIGN_OR_RETURN(std::string der, key.ToPkcs8Der());
    const std::string id = ids::New("acct");
    C2D_ASSIGN_OR_RETURN(crypto::Sealed sealed, keys.Seal(der, AccountAad(id)));
    C2D_RETURN_IF_ERROR(pool_.Transact("acme account", [&](pg::Tx& tx) {
      tx.Exec(kInsertAccount, id, config_.acme_directory, config_.acme_email, sealed.key_id,
              absl::BytesToHexString(sealed.wrapped_key), absl::BytesToHexString(sealed.nonce),
              absl::BytesToHexString(sealed.ciphertext));
      return absl::OkStatus();
    }));
    stored = pool_.Read("acme account", [&](pg::Tx& tx) -> absl::StatusOr<pqxx::result> {
      return tx.Exec(kAccount, config_.acme_directory);
    });
    if (!stored.ok()) return stored.status();
    if (stored->empty()) return absl::InternalError("the ACME account was not stored");
  }
  const pqxx::row r = (*stored)[0];
  account_id_ = r[0].as<std::string>();
  C2D_ASSIGN_OR_RETURN(std::string der, keys.Open(SealedAt(r, 2), AccountAad(account_id_)));
  C2D_ASSIGN_OR_RETURN(crypto::EcKey key, crypto::EcKey::FromPkcs8Der(der));
  client_ = std::make_unique<acme::Client>(ClientOptions(config_), std::move(key),
                                           r[1].as<std::string>());
  if (client_->account_url().empty()) {
    C2D_ASSIGN_OR_RETURN(std::string url, client_->RegisterAccount(config_.acme_email));
    C2D_RETURN_IF_ERROR(pool_.Transact("acme account registered", [&](pg::Tx& tx) {
      tx.Exec(kRegistered, account_id_, url);
      return absl::OkStatus();
    }));
    log::Info("acme account registered", {{"directory", config_.acme_directory}});
  }
  return client_.get();
}

absl::StatusOr<std::pair<acme::Order, crypto::EcKey>> AcmeIssuer::OrderFor(
    acme::Client& client, const CertificateRow& row) {
  const std::string& id = row.cert.id();
  const crypto::MasterKeys& keys = *config_.master_keys;
  auto stored = pool_.Read(
      "order", [&](pg::Tx& tx) -> absl::StatusOr<pqxx::result> { return tx.Exec(kOrderLoad, id); });
  if (!stored.ok()) return stored.status();
  if (!stored->empty() && !(*stored)[0][0].as<std::string>().empty()) {
    const pqxx::row r = (*stored)[0];
    auto order = client.GetOrder(r[0].as<std::string>());
    auto der = keys.Open(SealedAt(r, 1), OrderAad(id));
    if (order.ok() && der.ok() && order->status != "invalid") {
      C2D_ASSIGN_OR_RETURN(crypto::EcKey key, crypto::EcKey::FromPkcs8Der(*der));
      return std::make_pair(std::move(*order), std::move(key));
    }
  }
  std::vector<acme::Identifier> identifiers;
  for (const std::string& h : row.cert.hostnames()) identifiers.push_back({"dns", h});
  std::string replaces;  // a renewal names its predecessor (sent only to CAs with ARI)
  if (!row.cert.certificate_chain_pem().empty()) {
    auto info = crypto::ParseCertificateChain(row.cert.certificate_chain_pem());
    if (info.ok()) replaces = info->ari_id;
  }
  C2D_ASSIGN_OR_RETURN(acme::Order order, client.NewOrder(identifiers, replaces));
  C2D_ASSIGN_OR_RETURN(crypto::EcKey key, crypto::EcKey::Generate());
  C2D_ASSIGN_OR_RETURN(std::string der, key.ToPkcs8Der());
  C2D_ASSIGN_OR_RETURN(crypto::Sealed sealed, keys.Seal(der, OrderAad(id)));
  std::string account_id;
  {
    absl::MutexLock lock(&mu_);
    account_id = account_id_;
  }
  C2D_RETURN_IF_ERROR(pool_.Transact("order", [&](pg::Tx& tx) {
    tx.Exec(kOrderStore, id, order.url, sealed.key_id, absl::BytesToHexString(sealed.wrapped_key),
            absl::BytesToHexString(sealed.nonce), absl::BytesToHexString(sealed.ciphertext),
            account_id);
    return absl::OkStatus();
  }));
  return std::make_pair(std::move(order), std::move(key));
}

absl::Status AcmeIssuer::Authorize(acme::Client& client, const std::string& authz_url,
                                   const std::string& certificate_id, absl::Time deadline) {
  C2D_ASSIGN_OR_RETURN(acme::Authorization authz, client.GetAuthorization(authz_url));
  if (authz.status == "valid") return absl::OkStatus();
  const std::string& name = authz.identifier.value;
  const acme::Challenge* http01 = authz.wildcard ? nullptr : authz.Find("http-01");
  const acme::Challenge* dns01 = authz.Find("dns-01");
  if (http01 != nullptr) {
    C2D_RETURN_IF_ERROR(pool_.Transact("http-01 answer", [&](pg::Tx& tx) {
      tx.Exec(kChallengePut, http01->token, client.KeyAuthorization(http01->token), certificate_id);
      return absl::OkStatus();
    }));
    C2D_RETURN_IF_ERROR(client.AcceptChallenge(http01->url).status());
  } else if (dns01 != nullptr && dns_ != nullptr) {
    v1::UpsertRecordsRequest txt;
    v1::Record& r = *txt.add_records();
    r.set_name(absl::StrCat("_acme-challenge.", name));
    r.set_type(v1::RECORD_TYPE_TXT);
    r.set_ttl(10);
    r.set_owner(absl::StrCat("certificate:", certificate_id));
    r.add_values(client.Dns01TxtValue(dns01->token));
    absl::StatusOr<v1::UpsertRecordsResponse> out = dns_->Upsert(txt);
    if (absl::IsInvalidArgument(out.status())) {
      return absl::FailedPreconditionError(absl::StrCat(
          name, " needs DNS-01 (", authz.wildcard ? "a wildcard" : "no HTTP-01 offered",
          ") and its _acme-challenge name is in no zone c2d serves: ", out.status().message()));
    }
    C2D_RETURN_IF_ERROR(out.status());
    if (!out->synced()) return absl::UnavailableError("the DNS-01 record is not served yet");
    C2D_RETURN_IF_ERROR(client.AcceptChallenge(dns01->url).status());
  } else {
    return absl::FailedPreconditionError(
        absl::StrCat("no challenge c2d can answer for ", name,
                     authz.wildcard ? " (a wildcard needs DNS-01 through c2d's DNS service)" : ""));
  }
  return client.WaitAuthorization(authz_url, deadline).status();
}

void AcmeIssuer::Cleanup(const std::string& certificate_id) {
  (void)pool_.Transact("challenges done", [&](pg::Tx& tx) {
    tx.Exec(kChallengeClear, certificate_id);
    return absl::OkStatus();
  });
  if (dns_ == nullptr) return;
  v1::DeleteRecordsRequest del;
  del.set_owner(absl::StrCat("certificate:", certificate_id));
  (void)dns_->Delete(del);
}

absl::StatusOr<acme::SuggestedRenewal> AcmeIssuer::SuggestedWindow(const std::string& chain_pem) {
  C2D_ASSIGN_OR_RETURN(acme::Client * client, Account());
  C2D_ASSIGN_OR_RETURN(bool offered, client->HasRenewalInfo());
  if (!offered) return absl::UnimplementedError("the CA offers no renewal information");
  C2D_ASSIGN_OR_RETURN(crypto::CertificateInfo info, crypto::ParseCertificateChain(chain_pem));
  if (info.ari_id.empty()) return absl::FailedPreconditionError("the certificate has no AKI");
  return client->RenewalInfo(info.ari_id);
}

absl::StatusOr<Issued> AcmeIssuer::Issue(const CertificateRow& row) {
  absl::StatusOr<Issued> issued = IssueOnce(row);
  if (acme::ProblemType(issued.status()) != "urn:ietf:params:acme:error:accountDoesNotExist") {
    return issued;
  }
  // The CA lost c2d's account (a test CA restarted, an account purged):
  // register the same key again and start over.
  log::Warn("the ACME CA no longer knows c2d's account; registering again",
            {{"directory", config_.acme_directory}});
  {
    absl::MutexLock lock(&mu_);
    client_.reset();
    C2D_RETURN_IF_ERROR(pool_.Transact("acme account lost", [&](pg::Tx& tx) {
      tx.Exec(kForgetAccount, account_id_);
      tx.Exec(kOrderClear, row.cert.id());
      return absl::OkStatus();
    }));
  }
  return IssueOnce(row);
}

absl::StatusOr<Issued> AcmeIssuer::IssueOnce(const CertificateRow& row) {
  const absl::Time deadline = absl::Now() + absl::FromChrono(config_.acme_timeout);
  C2D_ASSIGN_OR_RETURN(acme::Client * client, Account());
  C2D_ASSIGN_OR_RETURN(auto order_and_key, OrderFor(*client, row));
  acme::Order& order = order_and_key.first;
  const crypto::EcKey& key = order_and_key.second;
  absl::Status proved;
  if (order.status == "pending") {
    for (const std::string& url : order.authorizations) {
      proved = Authorize(*client, url, row.cert.id(), deadline);
      if (!proved.ok()) break;
    }
  }
  Cleanup(row.cert.id());
  if (!proved.ok()) {
    (void)pool_.Transact("order done", [&](pg::Tx& tx) {
      tx.Exec(kOrderClear, row.cert.id());
      return absl::OkStatus();
    });
    return proved;
  }
  if (order.status != "valid") {
    C2D_ASSIGN_OR_RETURN(order, client->WaitOrder(order.url, "ready", deadline));
    if (order.status == "ready") {
      std::vector<std::string> names(row.cert.hostnames().begin(), row.cert.hostnames().end());
      C2D_ASSIGN_OR_RETURN(std::string csr, crypto::CreateCsr(key, names));
      C2D_ASSIGN_OR_RETURN(order, client->Finalize(order, csr));
    }
    C2D_ASSIGN_OR_RETURN(order, client->WaitOrder(order.url, "valid", deadline));
  }
  Issued out;
  C2D_ASSIGN_OR_RETURN(out.chain_pem, client->DownloadChain(order.certificate));
  C2D_ASSIGN_OR_RETURN(out.key_der, key.ToPkcs8Der());
  C2D_ASSIGN_OR_RETURN(out.info, crypto::ParseCertificateChain(out.chain_pem));
  return out;
}

}  // namespace c2d::certs
