#pragma once

// The schema migrations compiled into this build (migrations/NNNN_*.sql).

#include <vector>

#include "libs/pg/migrate.h"

namespace c2d::migrations {

// Every migration of this build, in version order.
const std::vector<pg::Migration>& All();

// The schema version this build needs: the highest version in All().
int Latest();

}  // namespace c2d::migrations
