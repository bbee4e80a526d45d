/* modules.h - every C file that adds a type or functions to marketo.core.
 * X(name) declares and calls marketo_<name>_open(L); each opener registers its
 * metatable and sets its constructors on the module table at the stack top.
 * Add one line per file; keep them sorted. */
#define MARKETO_MODULES(X) \
    X(clock) \
    X(csv_keys) \
    X(csv_mapper) \
    X(csv_plan) \
    X(csv_reader) \
    X(csv_types) \
    X(csv_writer) \
    X(dir) \
    X(encoding) \
    X(file) \
    X(gzip) \
    X(journal) \
    X(loop) \
    X(process) \
    X(records) \
    X(request) \
    X(request_multipart) \
    X(share) \
    X(stat)
