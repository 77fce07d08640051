# Build helpers shared by every module: warnings, sanitizers, hafs_test(), hafs_benchmark().

set(HAFS_WARNINGS -Wall -Wextra -Wshadow -Wnon-virtual-dtor -Wformat=2 -Wimplicit-fallthrough)
if(HAFS_WERROR)
  list(APPEND HAFS_WARNINGS -Werror)
  # GCC 12 (Debian 12's compiler) at -O3 (Release) reports -Wrestrict inside std::string's
  # operator+ where no overlap can happen (a known GCC 12 regression): a warning there, not an
  # error, so that every build type builds with the default flags.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12
     AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    list(APPEND HAFS_WARNINGS -Wno-error=restrict)
  endif()
endif()

if(HAFS_ASAN AND HAFS_TSAN)
  message(FATAL_ERROR "HAFS_ASAN and HAFS_TSAN cannot be combined")
endif()
if(HAFS_ASAN OR HAFS_TSAN)
  # GCC 12 reports maybe-uninitialized false positives inside libstdc++ (std::regex,
  # std::function) when sanitizers instrument the code; the plain build keeps the warning.
  list(APPEND HAFS_WARNINGS -Wno-maybe-uninitialized)
endif()
if(HAFS_ASAN)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
elseif(HAFS_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()

# hafs_library(NAME SOURCES ... DEPS ...): one library per module; its public headers sit in the
# module folder and are included as "module/header.h".
function(hafs_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${HAFS_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# hafs_test(NAME SOURCES ... DEPS ... LABEL module [TIMEOUT s] [SERIAL]): a GoogleTest program whose
# tests are registered one by one with CTest and carry the module's label (ctest -L nvcache).
# SERIAL marks tests that mount, start daemons or measure: they never run beside each other.
function(hafs_test name)
  cmake_parse_arguments(ARG "SERIAL" "LABEL;TIMEOUT;PREFIX" "SOURCES;DEPS;DEFINES" ${ARGN})
  if(NOT ARG_LABEL)
    message(FATAL_ERROR "hafs_test(${name}) needs a LABEL")
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${HAFS_WARNINGS})
  target_compile_definitions(${name} PRIVATE ${ARG_DEFINES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gtest_main Threads::Threads)
  set(props LABELS ${ARG_LABEL} TIMEOUT ${ARG_TIMEOUT})
  if(ARG_SERIAL)
    list(APPEND props RUN_SERIAL TRUE)
  endif()
  include(GoogleTest)
  gtest_discover_tests(${name} TEST_PREFIX "${ARG_PREFIX}" PROPERTIES ${props} DISCOVERY_TIMEOUT 60)
endfunction()

# hafs_benchmark(NAME SOURCES ... DEPS ...): a Google Benchmark program under bench/.
function(hafs_benchmark name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${HAFS_WARNINGS})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} benchmark::benchmark Threads::Threads)
endfunction()
