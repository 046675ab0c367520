#pragma once

// A cloud::Provider that hands every call to another one: the base of test
// providers that change one behaviour of a real provider and leave the rest.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "libs/cloud/provider.h"

namespace c2d::testing {

class DelegatingProvider : public cloud::Provider {
 public:
  explicit DelegatingProvider(cloud::Provider& inner) : inner_(inner) {}

  absl::StatusOr<cloud::Instance> Create(const cloud::InstanceSpec& spec) override {
    return inner_.Create(spec);
  }
  absl::Status Start(const std::string& ref) override { return inner_.Start(ref); }
  absl::Status Stop(const std::string& ref, std::chrono::seconds grace) override {
    return inner_.Stop(ref, grace);
  }
  absl::Status Remove(const std::string& ref) override { return inner_.Remove(ref); }
  absl::StatusOr<cloud::Instance> Inspect(const std::string& ref) override {
    return inner_.Inspect(ref);
  }
  absl::StatusOr<std::vector<cloud::Instance>> List(
      const std::map<std::string, std::string>& labels) override {
    return inner_.List(labels);
  }
  absl::Status DeleteVolume(const std::string& volume) override {
    return inner_.DeleteVolume(volume);
  }
  absl::Status WriteVolumeFile(const std::string& volume, const std::string& name,
                               const std::string& source) override {
    return inner_.WriteVolumeFile(volume, name, source);
  }
  absl::Status EnsureNetwork(const std::string& network) override {
    return inner_.EnsureNetwork(network);
  }
  absl::Status RemoveNetwork(const std::string& network) override {
    return inner_.RemoveNetwork(network);
  }
  absl::Status FollowLogs(const std::string& ref, std::optional<absl::Time> since,
                          const std::function<bool(const cloud::LogLine&)>& on_line,
                          const std::atomic<bool>* cancel) override {
    return inner_.FollowLogs(ref, since, on_line, cancel);
  }
  bool VolumesAttachOnce() const override { return inner_.VolumesAttachOnce(); }
  absl::Status ServeCertificates(const std::string& ref,
                                 const std::vector<cloud::ServedCertificate>& certs) override {
    return inner_.ServeCertificates(ref, certs);
  }

 protected:
  cloud::Provider& inner() { return inner_; }

 private:
  cloud::Provider& inner_;
};

}  // namespace c2d::testing
