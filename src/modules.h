/* modules.h - what marketo.core is made of.
 * MARKETO_MODULES: the C files that add a type (or hook into one):
 * X(name) declares and calls marketo_<name>_open(L), which registers its
 * metatable and sets its constructors on the module table at the stack top.
 * Add one line per such file; keep them sorted. */
#define MARKETO_MODULES(X) \
    X(csv_keys) \
    X(csv_keys_parallel) \
    X(csv_reader) \
    X(csv_writer) \
    X(journal) \
    X(loop) \
    X(records) \
    X(request) \
    X(request_multipart) \
    X(share) \
    X(state)

/* Every plain function marketo.core exports, X("lua name", c_function), in
 * one list: a C file that adds only functions needs no opener of its own.
 * Keep them sorted by name. */
#define MARKETO_FUNCTIONS(X) \
    X("catch_signals", marketo_process_catch_signals) \
    X("cpus", marketo_process_cpus) \
    X("csv_check_types", marketo_check_types) \
    X("csv_copy_checked", marketo_copy_checked) \
    X("csv_copy", marketo_copy_run) \
    X("csv_fill_holes", marketo_csv_fill_holes) \
    X("csv_map", marketo_map_run) \
    X("csv_line_offsets", marketo_csv_line_offsets) \
    X("csv_map_lua", marketo_map_lua) \
    X("csv_plan", marketo_plan_new) \
    X("csv_row_at", marketo_csv_row_at) \
    X("cwd", marketo_file_cwd) \
    X("exit_now", marketo_process_exit_now) \
    X("file_mode", marketo_stat_file_mode) \
    X("fork", marketo_process_fork) \
    X("getpid", marketo_process_getpid) \
    X("gunzip", marketo_gzip_gunzip) \
    X("is_folder", marketo_stat_is_folder) \
    X("isatty", marketo_process_isatty) \
    X("kill", marketo_process_kill) \
    X("mkdir", marketo_dir_mkdir) \
    X("monotonic", marketo_clock_monotonic) \
    X("self_exe", marketo_process_self_exe) \
    X("sleep", marketo_clock_sleep) \
    X("stop_requested", marketo_process_stop_requested) \
    X("to_utf8", marketo_encoding_to_utf8) \
    X("wait", marketo_process_wait) \
    X("write_file", marketo_file_write)
