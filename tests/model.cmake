# Model loading and forward tests (src/format, src/model, src/engine, src/backend/cpu).
brisk_test(test_stories SOURCES unit/test_stories.c ARGS ${BRISK_SHARED} LABELS model)
brisk_test(test_loader_errors SOURCES unit/test_loader_errors.c ARGS ${BRISK_SHARED} LABELS unit)
target_link_libraries(test_loader_errors PRIVATE m)
brisk_test(test_goldens SOURCES unit/test_goldens.c ARGS ${BRISK_GOLDEN} LABELS model)
target_link_libraries(test_goldens PRIVATE m)
# The same model checks on the fast CPU backend (backend/cpu/, issue 6).
add_test(NAME test_stories_cpu COMMAND test_stories ${BRISK_SHARED} cpu)
set_tests_properties(test_stories_cpu PROPERTIES LABELS model)
add_test(NAME test_goldens_cpu COMMAND test_goldens ${BRISK_GOLDEN} cpu)
set_tests_properties(test_goldens_cpu PROPERTIES LABELS model)
