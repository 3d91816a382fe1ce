# Model loading and forward tests (src/format, src/model, src/engine, src/backend/cpu).
brisk_test(test_stories SOURCES unit/test_stories.c ARGS ${BRISK_SHARED} LABELS model)
brisk_test(test_loader_errors SOURCES unit/test_loader_errors.c ARGS ${BRISK_SHARED} LABELS unit)
target_link_libraries(test_loader_errors PRIVATE m)
brisk_test(test_goldens SOURCES unit/test_goldens.c ARGS ${BRISK_GOLDEN} LABELS model)
target_link_libraries(test_goldens PRIVATE m)

# The same parity checks on the CUDA backend (label gpu; exit code 77 = skipped without a card),
# and every CUDA matmul path against the reference.
if(BRISK_CUDA)
  add_test(NAME test_stories_gpu COMMAND test_stories ${BRISK_SHARED} cuda)
  add_test(NAME test_goldens_gpu COMMAND test_goldens ${BRISK_GOLDEN} cuda)
  brisk_test(test_ops_cuda SOURCES ops/test_ops_cuda.c LABELS gpu)
  target_link_libraries(test_ops_cuda PRIVATE CUDA::cudart_static m)
  set_tests_properties(test_stories_gpu test_goldens_gpu test_ops_cuda PROPERTIES
    LABELS gpu SKIP_RETURN_CODE 77)
endif()
