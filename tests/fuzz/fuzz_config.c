/*
 * Fuzz the pipeline-file loader: YAML text through
 * sl_config_parse_unguarded() (parse, ${VAR} interpolation, schema checks,
 * defaults).  A loaded config is walked and freed; a refused one must come
 * with errors that sl_config_errors_print() can show.  Unguarded: libfyaml
 * runs in this process, so its crashes still reach libFuzzer (the runner
 * tells them from sluice's) and no input pays for a fork.
 */
#include "config.h"
#include "err.h"
#include "log.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *devnull;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sl_log_set_level(SL_LOG_OFF);
    /* Something for ${VAR} to find; unset ones are errors. */
    setenv("SLUICE_FUZZ_VAR", "value", 1);
    setenv("SLUICE_FUZZ_EMPTY", "", 1);
    devnull = fopen("/dev/null", "w");
    if (!devnull)
        abort();
    return 0;
}

static void walk(const struct sl_config *cfg)
{
    if (!cfg->name || cfg->version != 1)
        abort();
    for (size_t i = 0; i < cfg->backend_cnt; i++) {
        const struct sl_config_backend *bc = &cfg->backends[i];
        if (sl_config_backend_find(cfg, bc->name) != bc)
            abort();
        (void)sl_config_backend_kind_name(bc->kind);
        for (size_t j = 0; j < bc->message_cnt; j++)
            if (!bc->messages[j].content)
                abort();
    }
    for (size_t i = 0; i < cfg->step_cnt; i++)
        for (size_t j = 0; j < cfg->steps[i].backends.cnt; j++)
            if (!sl_config_backend_find(cfg, cfg->steps[i].backends.items[j]))
                abort(); /* a step names a backend that does not exist */
    if (cfg->source.present)
        (void)sl_config_source_kind_name(cfg->source.kind);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sl_config *cfg = NULL;
    struct sl_config_errors errs = {0};

    int rc = sl_config_parse_unguarded("fuzz.yaml", (const char *)data, size,
                                       &cfg, &errs);
    if (rc == 0) {
        if (!cfg || errs.cnt)
            abort();
        walk(cfg);
    } else {
        if (cfg || rc >= 0)
            abort();
        for (size_t i = 0; i < errs.cnt; i++) {
            if (!errs.items[i].text)
                abort();
            /* One line of text each, whatever the input held. */
            for (const char *c = errs.items[i].text; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                    abort();
            /* Sorted by line and column, as documented. */
            if (i > 0 && (errs.items[i].line < errs.items[i - 1].line ||
                          (errs.items[i].line == errs.items[i - 1].line &&
                           errs.items[i].column < errs.items[i - 1].column)))
                abort();
        }
        sl_config_errors_print(devnull, "fuzz.yaml", rc, &errs);
    }
    sl_config_errors_clear(&errs);
    sl_config_destroy(cfg);
    return 0;
}
