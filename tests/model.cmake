# Model loading and forward tests (src/format, src/model, src/engine, src/backend/cpu).
brisk_test(test_stories SOURCES unit/test_stories.c ARGS ${BRISK_SHARED} LABELS model)
brisk_test(test_loader_errors SOURCES unit/test_loader_errors.c ARGS ${BRISK_SHARED} LABELS unit)
target_link_libraries(test_loader_errors PRIVATE m)
brisk_test(test_goldens SOURCES unit/test_goldens.c ARGS ${BRISK_GOLDEN} LABELS model)
target_link_libraries(test_goldens PRIVATE m)
brisk_test(test_sampler SOURCES unit/test_sampler.c LABELS unit)
target_link_libraries(test_sampler PRIVATE m)
brisk_test(test_cli SOURCES e2e/test_cli.c ARGS $<TARGET_FILE:brisk-cli> ${BRISK_SHARED} LABELS model)
