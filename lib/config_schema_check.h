/*
 * Private to the config loader: the checks the schema tables
 * (config_schema.c) point at, defined in config_schema_check.c - what a
 * string value must look like, and the cross-key rules a mapping runs once
 * its keys are read.
 */
#ifndef SL_CONFIG_SCHEMA_CHECK_H
#define SL_CONFIG_SCHEMA_CHECK_H

#include "config_schema.h"

/* String checks: a row's .check (values, list items or map keys). */
extern const struct sl_config_strcheck sl_config_chk_header_name;
extern const struct sl_config_strcheck sl_config_chk_name;
extern const struct sl_config_strcheck sl_config_chk_backend_name;
extern const struct sl_config_strcheck sl_config_chk_http_url;
extern const struct sl_config_strcheck sl_config_chk_redis_url;
extern const struct sl_config_strcheck sl_config_chk_dsn;
extern const struct sl_config_strcheck sl_config_chk_table;
extern const struct sl_config_strcheck sl_config_chk_column;
extern const struct sl_config_strcheck sl_config_chk_env_name;
extern const struct sl_config_strcheck sl_config_chk_pointer;
extern const struct sl_config_strcheck sl_config_chk_host_port;
extern const struct sl_config_strcheck sl_config_chk_template;

/*
 * Cross-key checks: a schema's .check, called by the walker with the
 * struct just read ('obj'), its mapping 'map' and its key path 'path';
 * each reports what it finds through sl_config_report().
 */
typedef void sl_config_check_fn(struct sl_config_ctx *ctx, void *obj,
                                struct fy_node *map, const char *path);

sl_config_check_fn sl_config_check_kv_secret;
sl_config_check_fn sl_config_check_kafka;
sl_config_check_fn sl_config_check_redis;
sl_config_check_fn sl_config_check_retry;
sl_config_check_fn sl_config_check_backend;
sl_config_check_fn sl_config_check_postgres;
sl_config_check_fn sl_config_check_root; /* 'map' is the document's root */

#endif
