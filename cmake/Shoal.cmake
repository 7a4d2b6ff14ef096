# shoal_add_test(NAME name SOURCES a.cc b.cc LIBS shoal_x ...)
# One GoogleTest binary registered with ctest; SHOAL_SHARED_DATA is passed as a define so
# integration tests find ../shared/data without copies.
function(shoal_add_test)
  cmake_parse_arguments(T "" "NAME" "SOURCES;LIBS" ${ARGN})
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main Threads::Threads)
  target_compile_definitions(${T_NAME} PRIVATE SHOAL_SHARED_DATA="${SHOAL_SHARED_DATA}"
                             SHOAL_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  gtest_discover_tests(${T_NAME} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)
endfunction()

# shoal_add_library(NAME shoal_x SOURCES ... DEPS ...): a module library; DEPS are PUBLIC so the
# dependency graph in each src/<module>/CMakeLists.txt is the architecture.
function(shoal_add_library)
  cmake_parse_arguments(L "" "NAME" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  if(NOT L_SOURCES)  # a module whose sources are not written yet: headers only
    add_library(${L_NAME} INTERFACE)
    target_include_directories(${L_NAME} INTERFACE ${CMAKE_SOURCE_DIR}/src)
    target_link_libraries(${L_NAME} INTERFACE ${L_DEPS})
    return()
  endif()
  add_library(${L_NAME} STATIC ${L_SOURCES})
  target_include_directories(${L_NAME} PUBLIC ${CMAKE_SOURCE_DIR}/src)
  target_link_libraries(${L_NAME} PUBLIC ${L_DEPS} PRIVATE ${L_PRIVATE_DEPS})
endfunction()
