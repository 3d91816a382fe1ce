// api_cpp.cpp: brisk.h compiles as C++ (extern "C" linkage, no C-only constructs).
#include "brisk.h"

#include <cstdio>

int main() {
    brisk_model_params mp = brisk_model_default_params();
    brisk_model *m = nullptr;
    brisk_status st = brisk_model_load("/nonexistent", &mp, &m);
    bool ok = st == BRISK_ERR_NOT_FOUND && m == nullptr;
    std::printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
    return ok ? 0 : 1;
}
