#include "libs/rpc/validate.h"

#include <algorithm>
#include <regex>

#include "absl/strings/str_cat.h"

namespace c2d::rpc {

absl::Status InvalidField(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

bool ValidName(absl::string_view name) {
  static const std::regex kName("^[a-z][a-z0-9-]{0,38}$");
  return std::regex_match(name.begin(), name.end(), kName);
}

absl::StatusOr<int> PageSize(const v1::PageRequest& page) {
  constexpr int kDefault = 50, kMax = 200;
  if (page.page_size() < 0) return InvalidField("page.page_size", "must not be negative");
  if (page.page_size() == 0) return kDefault;
  return std::min(page.page_size(), kMax);
}

}  // namespace c2d::rpc
