// The Catch2 main, alone in its file so that it compiles once (it is slow).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
