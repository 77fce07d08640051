// Command-line parsing for hafs tools: CLI11 with the project's exit codes (2 for any bad
// command line; 0 for --help), instead of CLI11's own per-error codes.
#pragma once

#include <CLI/CLI.hpp>

#define HAFS_CLI_PARSE(app, argc, argv)                 \
  do {                                                  \
    try {                                               \
      (app).parse((argc), (argv));                      \
    } catch (const CLI::ParseError& e) {                \
      return (app).exit(e) == 0 ? 0 : 2;                \
    }                                                   \
  } while (0)
