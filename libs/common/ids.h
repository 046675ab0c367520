#pragma once

// Resource identifiers: "<prefix>_<26 Crockford base32 characters>", such as
// "prj_01JD3Q8Z7X9K2M4N6P8R0T2V4W". The first 10 characters encode the
// creation time in milliseconds (so ids sort by creation), the other 16 carry
// 80 random bits from the OS CSPRNG.

#include <string>

#include "absl/strings/string_view.h"

namespace c2d::ids {

std::string New(absl::string_view prefix);

// True for a well-formed id with the given prefix.
bool Valid(absl::string_view id, absl::string_view prefix);

}  // namespace c2d::ids
