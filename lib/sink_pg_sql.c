/*
 * PostgreSQL sink, SQL side: identifier checks and quoting, the text of
 * the CREATE/INSERT statements, and the parameters (rows as arrays in
 * binary format, dead letters as binary scalars) so that no value is ever
 * pasted into SQL and no escaping can go wrong.
 */
#include "sink_pg_int.h"
#include "byteorder.h"
#include "err.h"
#include "strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDENT_MAX 63 /* NAMEDATALEN - 1 */

/* Length of the identifier at s, or 0 when s does not start with one. */
static size_t ident_len(const char *s)
{
    size_t n = 0;

    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
          s[0] == '_'))
        return 0;
    while ((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
           (s[n] >= '0' && s[n] <= '9') || s[n] == '_')
        n++;
    return n;
}

int sl_sink_pg_ident_check(const char *name, const char *what, char *errstr,
                           size_t errstr_size)
{
    const char *p = name;
    size_t n;
    int parts = 0;

    if (!name || !*name)
        return sl_seterr(-SL_ECONFIG, errstr, errstr_size, "%s name is empty",
                         what);
    for (;;) {
        n = ident_len(p);
        if (n == 0 || n > IDENT_MAX)
            break;
        parts++;
        p += n;
        if (*p == '\0')
            return 0;
        if (*p != '.' || parts == 2)
            break;
        p++;
    }
    return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                     "%s name \"%.80s\" is not [schema.]name with each part "
                     "[A-Za-z_][A-Za-z0-9_]{0,62}",
                     what, name);
}

int sl_sink_pg_ident_quote(const char *name, char *buf, size_t size)
{
    size_t o = 0;
    const char *p;

    for (p = name;; p++) {
        if (o + 4 > size)
            return -SL_ETOOBIG;
        if (p == name)
            buf[o++] = '"';
        if (*p == '\0') {
            buf[o++] = '"';
            break;
        }
        if (*p == '.') {
            buf[o++] = '"';
            buf[o++] = '.';
            buf[o++] = '"';
            continue;
        }
        if (*p == '"') /* never after a check; kept for safety */
            buf[o++] = '"';
        buf[o++] = *p;
    }
    buf[o] = '\0';
    return 0;
}

/* ---- binary arrays ---- */

#define ARR_HDR 20 /* ndim, has_null, elem oid, dim size, lower bound */

static int reserve(struct sl_pgarr *a, size_t more)
{
    size_t cap;
    unsigned char *nb;

    if (a->len + more <= a->cap)
        return 0;
    cap = a->cap ? a->cap : 256;
    while (cap < a->len + more)
        cap *= 2;
    nb = realloc(a->buf, cap);
    if (!nb)
        return -SL_ENOMEM;
    a->buf = nb;
    a->cap = cap;
    return 0;
}

int sl_pgarr_begin(struct sl_pgarr *a, uint32_t elem_oid)
{
    a->len = 0;
    a->count = 0;
    a->has_null = 0;
    if (reserve(a, ARR_HDR) < 0)
        return -SL_ENOMEM;
    sl_put_be32(a->buf, 1);
    sl_put_be32(a->buf + 4, 0);
    sl_put_be32(a->buf + 8, elem_oid);
    sl_put_be32(a->buf + 12, 0);
    sl_put_be32(a->buf + 16, 1);
    a->len = ARR_HDR;
    return 0;
}

int sl_pgarr_add(struct sl_pgarr *a, const void *data, size_t len)
{
    if (len > 0x3fffffff)
        return -SL_ETOOBIG;
    if (reserve(a, 4 + (data ? len : 0)) < 0)
        return -SL_ENOMEM;
    if (!data) {
        sl_put_be32(a->buf + a->len, 0xffffffffu);
        a->len += 4;
        a->has_null = 1;
    } else {
        sl_put_be32(a->buf + a->len, (uint32_t)len);
        if (len)
            memcpy(a->buf + a->len + 4, data, len);
        a->len += 4 + len;
    }
    a->count++;
    return 0;
}

int sl_pgarr_add_i32(struct sl_pgarr *a, int32_t v)
{
    unsigned char b[4];

    sl_put_be32(b, (uint32_t)v);
    return sl_pgarr_add(a, b, 4);
}

int sl_pgarr_add_i64(struct sl_pgarr *a, int64_t v)
{
    unsigned char b[8];

    sl_put_be32(b, (uint32_t)((uint64_t)v >> 32));
    sl_put_be32(b + 4, (uint32_t)v);
    return sl_pgarr_add(a, b, 8);
}

int sl_pgarr_add_jsonb(struct sl_pgarr *a, const char *text, size_t len)
{
    if (!text)
        return sl_pgarr_add(a, NULL, 0);
    if (len > 0x3ffffffe)
        return -SL_ETOOBIG;
    if (reserve(a, 5 + len) < 0)
        return -SL_ENOMEM;
    sl_put_be32(a->buf + a->len, (uint32_t)(len + 1));
    a->buf[a->len + 4] = 1; /* jsonb binary format version */
    memcpy(a->buf + a->len + 5, text, len);
    a->len += 5 + len;
    a->count++;
    return 0;
}

int sl_pgarr_add_elems(struct sl_pgarr *a, const void *elems, size_t len,
                       uint32_t count)
{
    if (len > 0x3fffffff || a->count > 0x3fffffff - count)
        return -SL_ETOOBIG;
    if (reserve(a, len) < 0)
        return -SL_ENOMEM;
    if (len)
        memcpy(a->buf + a->len, elems, len);
    a->len += len;
    a->count += count;
    return 0;
}

void sl_pgarr_finish(struct sl_pgarr *a)
{
    sl_put_be32(a->buf + 4, (uint32_t)a->has_null);
    sl_put_be32(a->buf + 12, a->count);
}

void sl_pgarr_free(struct sl_pgarr *a)
{
    free(a->buf);
    memset(a, 0, sizeof(*a));
}

/* ---- parameters ---- */

#define PG_EPOCH_US 946684800000000LL /* 2000-01-01 in Unix microseconds */

static int64_t pg_time(int64_t unix_us)
{
    return unix_us - PG_EPOCH_US;
}

static int add_str(struct sl_pgarr *a, const char *s)
{
    return sl_pgarr_add(a, s, s ? strlen(s) : 0);
}

static int add_jsonb(struct sl_pgarr *a, const char *s)
{
    return sl_pgarr_add_jsonb(a, s, s ? strlen(s) : 0);
}

/* Row 'row''s vector 'v' into a[0] (elements), a[1] (start), a[2] (length). */
static int add_vector(struct sl_pgarr *a, const struct sl_row *row, size_t v)
{
    const struct sl_row_vec *vec = v < row->nvec ? &row->vecs[v] : NULL;
    int rc = 0;

    if (!vec || !vec->elems) {
        rc |= sl_pgarr_add(&a[1], NULL, 0);
        return rc | sl_pgarr_add(&a[2], NULL, 0);
    }
    rc |= sl_pgarr_add_i32(&a[1], (int32_t)a[0].count + 1);
    rc |= sl_pgarr_add_i32(&a[2], (int32_t)vec->count);
    return rc | sl_pgarr_add_elems(&a[0], vec->elems, (size_t)vec->count * 8,
                                   vec->count);
}

int sl_sink_pg_encode_results(struct sl_pgarr *a, size_t nvec,
                              struct sl_row *const *rows, size_t n)
{
    static const uint32_t elem[SL_SINK_PG_NCOLS] = {
        SL_PG_OID_TEXT,       SL_PG_OID_TEXT,  SL_PG_OID_INT4,  SL_PG_OID_INT8,
        SL_PG_OID_TEXT,       SL_PG_OID_TEXT,  SL_PG_OID_JSONB, SL_PG_OID_BYTEA,
        SL_PG_OID_JSONB,      SL_PG_OID_JSONB, SL_PG_OID_JSONB, SL_PG_OID_TEXT,
        SL_PG_OID_TIMESTAMPTZ};
    int rc = 0, i;
    size_t r;

    for (i = 0; i < SL_SINK_PG_NCOLS; i++)
        rc |= sl_pgarr_begin(&a[i], elem[i]);
    for (size_t v = 0; v < nvec; v++) {
        rc |= sl_pgarr_begin(&a[SL_SINK_PG_NCOLS + 3 * v], SL_PG_OID_FLOAT4);
        rc |= sl_pgarr_begin(&a[SL_SINK_PG_NCOLS + 3 * v + 1], SL_PG_OID_INT4);
        rc |= sl_pgarr_begin(&a[SL_SINK_PG_NCOLS + 3 * v + 2], SL_PG_OID_INT4);
    }
    for (r = 0; r < n && rc == 0; r++) {
        const struct sl_row *row = rows[r];
        const struct sl_msg *msg = row->msg;
        const struct sl_origin *o = &msg->origin;

        if (row->kind != SL_ROW_RESULT)
            continue;
        rc |= add_str(&a[0], sl_source_kind_name(o->kind));
        rc |= sl_pgarr_add(&a[1], o->topic ? o->topic : "",
                           o->topic ? strlen(o->topic) : 0);
        rc |= sl_pgarr_add_i32(&a[2], o->partition);
        rc |= sl_pgarr_add_i64(&a[3], o->offset);
        rc |= sl_pgarr_add(&a[4], o->entry_id, strlen(o->entry_id));
        rc |= sl_pgarr_add(&a[5], msg->key, msg->key_len);
        if (row->payload_json) {
            rc |= sl_pgarr_add_jsonb(&a[6], (const char *)msg->payload,
                                     msg->payload_len);
            rc |= sl_pgarr_add(&a[7], NULL, 0);
        } else {
            rc |= sl_pgarr_add(&a[6], NULL, 0);
            rc |= sl_pgarr_add(&a[7], msg->payload, msg->payload_len);
        }
        rc |= add_jsonb(&a[8], row->results);
        rc |= add_jsonb(&a[9], row->errors);
        rc |= add_jsonb(&a[10], row->timings);
        rc |= sl_pgarr_add(&a[11], row->worker,
                           row->worker ? strlen(row->worker) : 0);
        if (msg->recv_time_us)
            rc |= sl_pgarr_add_i64(&a[12], pg_time(msg->recv_time_us));
        else
            rc |= sl_pgarr_add(&a[12], NULL, 0);
        for (size_t v = 0; v < nvec; v++)
            rc |= add_vector(&a[SL_SINK_PG_NCOLS + 3 * v], row, v);
    }
    for (i = 0; i < (int)SL_SINK_PG_NPARAMS(nvec); i++)
        sl_pgarr_finish(&a[i]);
    return rc ? -SL_ENOMEM : 0;
}

void sl_sink_pg_encode_dead(const struct sl_row *row,
                            struct sl_sink_pg_dead_params *p)
{
    const struct sl_msg *msg = row->msg;
    const struct sl_origin *o = &msg->origin;
    const char *src = sl_source_kind_name(o->kind);
    const char *stage = sl_row_stage_name(row->stage);
    const char *err = row->error ? row->error : "";
    const char **vals = p->vals;
    int *lens = p->lens;

    sl_put_be32(p->part, (uint32_t)o->partition);
    sl_put_be32(p->off, (uint32_t)((uint64_t)o->offset >> 32));
    sl_put_be32(p->off + 4, (uint32_t)o->offset);
    sl_put_be32(p->att, row->attempts);
    vals[0] = src, lens[0] = (int)strlen(src);
    vals[1] = o->topic ? o->topic : "";
    lens[1] = (int)strlen(vals[1]);
    vals[2] = (const char *)p->part, lens[2] = 4;
    vals[3] = (const char *)p->off, lens[3] = 8;
    vals[4] = o->entry_id, lens[4] = (int)strlen(o->entry_id);
    vals[5] = msg->key, lens[5] = (int)msg->key_len;
    vals[6] = (const char *)msg->payload, lens[6] = (int)msg->payload_len;
    if (!vals[6])
        vals[6] = "", lens[6] = 0;
    vals[7] = stage, lens[7] = (int)strlen(stage);
    vals[8] = err, lens[8] = (int)strlen(err);
    vals[9] = row->sqlstate[0] ? row->sqlstate : NULL;
    lens[9] = (int)strlen(row->sqlstate);
    vals[10] = (const char *)p->att, lens[10] = 4;
}

/* ---- errors and bisection ---- */

/*
 * A failed statement's SQLSTATE as an SL_E* code: -SL_EDATA for classes
 * 22 (data exception) and 23 (integrity), -SL_EDB for any other (and for
 * NULL).
 */
static int sqlstate_err(const char *sqlstate)
{
    if (sqlstate &&
        (strncmp(sqlstate, "22", 2) == 0 || strncmp(sqlstate, "23", 2) == 0))
        return -SL_EDATA;
    return -SL_EDB;
}

int sl_sink_pg_is_data_error(const char *sqlstate)
{
    return !sl_err_retriable(sqlstate_err(sqlstate));
}

void sl_sink_pg_bisect(size_t n, size_t *firstp)
{
    *firstp = n / 2 ? n / 2 : 1;
}

int sl_sink_pg_columns_check(const struct sl_sink_pg_columns *c, char *errstr,
                             size_t errstr_size)
{
    const char *const *names = (const char *const *)c;
    size_t i, n = sizeof(*c) / sizeof(const char *);
    int rc;

    for (i = 0; i < n; i++) {
        if (!names[i])
            continue;
        if (strchr(names[i], '.'))
            return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                             "postgres column name \"%.80s\" has a dot",
                             names[i]);
        rc = sl_sink_pg_ident_check(names[i], "column", errstr, errstr_size);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---- SQL text ---- */

/* Logical columns in parameter order, with types and defaults. */
static const struct {
    size_t off;       /* offsetof in struct sl_sink_pg_columns */
    const char *name; /* default column name */
    const char *type; /* SQL type of the column */
    const char *arr;  /* parameter array type */
    const char *ddl;  /* constraints in CREATE TABLE */
} cols_def[SL_SINK_PG_NCOLS] = {
    {offsetof(struct sl_sink_pg_columns, source), "source", "text", "text[]",
     " NOT NULL"},
    {offsetof(struct sl_sink_pg_columns, topic), "topic", "text", "text[]",
     " NOT NULL"},
    {offsetof(struct sl_sink_pg_columns, partition), "partition", "integer",
     "int4[]", " NOT NULL"},
    {offsetof(struct sl_sink_pg_columns, offset), "offset", "bigint", "int8[]",
     " NOT NULL"},
    {offsetof(struct sl_sink_pg_columns, entry_id), "entry_id", "text",
     "text[]", " NOT NULL DEFAULT ''"},
    {offsetof(struct sl_sink_pg_columns, key), "key", "text", "text[]", ""},
    {offsetof(struct sl_sink_pg_columns, payload), "payload", "jsonb",
     "jsonb[]", ""},
    {offsetof(struct sl_sink_pg_columns, payload_raw), "payload_raw", "bytea",
     "bytea[]", ""},
    {offsetof(struct sl_sink_pg_columns, results), "results", "jsonb",
     "jsonb[]", ""},
    {offsetof(struct sl_sink_pg_columns, errors), "errors", "jsonb", "jsonb[]",
     ""},
    {offsetof(struct sl_sink_pg_columns, timings), "timings", "jsonb",
     "jsonb[]", ""},
    {offsetof(struct sl_sink_pg_columns, worker), "worker", "text", "text[]",
     ""},
    {offsetof(struct sl_sink_pg_columns, received_at), "received_at",
     "timestamptz", "timestamptz[]", ""},
};

static const char *col_name(const struct sl_sink_pg_columns *cols, int i)
{
    const char *n = NULL;

    if (cols)
        n = *(const char *const *)((const char *)cols + cols_def[i].off);
    return n ? n : cols_def[i].name;
}

char *sl_sink_pg_sql_insert(const char *qtable,
                            const struct sl_sink_pg_columns *cols,
                            const struct sl_sink_pg_vector *vecs, size_t nvec)
{
    struct sl_strbuf b = {0};
    int i;
    size_t v;

    sl_strbuf_addf(&b, "INSERT INTO %s (", qtable);
    for (i = 0; i < SL_SINK_PG_NCOLS; i++)
        sl_strbuf_addf(&b, "%s\"%s\"", i ? ", " : "", col_name(cols, i));
    for (v = 0; v < nvec; v++)
        sl_strbuf_addf(&b, ", \"%s\"", vecs[v].column);
    sl_strbuf_addf(&b, ") SELECT ");
    for (i = 0; i < SL_SINK_PG_NCOLS; i++)
        sl_strbuf_addf(&b, "%su.c%d", i ? ", " : "", i + 1);
    /* Each vector a slice of its parameter, all rows' elements in one
     * real[] received in binary: no text for PostgreSQL to parse. */
    for (v = 0; v < nvec; v++) {
        int p = SL_SINK_PG_NCOLS + 3 * (int)v + 1;
        sl_strbuf_addf(&b,
                       ", CASE WHEN u.s%zu IS NOT NULL THEN "
                       "($%d::real[])[u.s%zu:u.s%zu + u.l%zu - 1] END",
                       v + 1, p, v + 1, v + 1, v + 1);
    }
    sl_strbuf_addf(&b, " FROM unnest(");
    for (i = 0; i < SL_SINK_PG_NCOLS; i++)
        sl_strbuf_addf(&b, "%s$%d::%s", i ? ", " : "", i + 1, cols_def[i].arr);
    for (v = 0; v < nvec; v++) {
        int p = SL_SINK_PG_NCOLS + 3 * (int)v + 1;
        sl_strbuf_addf(&b, ", $%d::int4[], $%d::int4[]", p + 1, p + 2);
    }
    sl_strbuf_addf(&b, ") AS u(");
    for (i = 0; i < SL_SINK_PG_NCOLS; i++)
        sl_strbuf_addf(&b, "%sc%d", i ? ", " : "", i + 1);
    for (v = 0; v < nvec; v++)
        sl_strbuf_addf(&b, ", s%zu, l%zu", v + 1, v + 1);
    sl_strbuf_addf(&b, ") ON CONFLICT DO NOTHING");
    return sl_strbuf_done(&b);
}

int sl_sink_pg_vectors_check(const struct sl_sink_pg_columns *cols,
                             const struct sl_sink_pg_vector *vecs, size_t nvec,
                             char *errstr, size_t errstr_size)
{
    for (size_t v = 0; v < nvec; v++) {
        const char *c = vecs[v].column;
        int rc;
        if (!c || !vecs[v].backend || !*vecs[v].backend)
            return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                             "postgres vector column %zu has no column name "
                             "or no backend",
                             v);
        if (strchr(c, '.'))
            return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                             "postgres column name \"%.80s\" has a dot", c);
        rc = sl_sink_pg_ident_check(c, "column", errstr, errstr_size);
        if (rc < 0)
            return rc;
        for (int i = 0; i < SL_SINK_PG_NCOLS; i++)
            if (!strcmp(c, col_name(cols, i)))
                return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                                 "postgres vector column \"%.80s\" is also "
                                 "the %s column",
                                 c, cols_def[i].name);
        if (!strcmp(c, "id") || !strcmp(c, "processed_at"))
            return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                             "postgres vector column \"%s\" is a column "
                             "sluice's table has already",
                             c);
        for (size_t k = 0; k < v; k++)
            if (!strcmp(c, vecs[k].column))
                return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                                 "postgres vector column \"%.80s\" is given "
                                 "twice",
                                 c);
    }
    return 0;
}

char *sl_sink_pg_sql_create(const char *qtable,
                            const struct sl_sink_pg_columns *cols,
                            const struct sl_sink_pg_vector *vecs, size_t nvec)
{
    struct sl_strbuf b = {0};
    int i;

    sl_strbuf_addf(
        &b, "CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY", qtable);
    for (i = 0; i < SL_SINK_PG_NCOLS; i++)
        sl_strbuf_addf(&b, ", \"%s\" %s%s", col_name(cols, i), cols_def[i].type,
                       cols_def[i].ddl);
    for (size_t v = 0; v < nvec; v++)
        sl_strbuf_addf(&b, ", \"%s\" real[]", vecs[v].column);
    sl_strbuf_addf(
        &b, ", processed_at timestamptz NOT NULL DEFAULT now(), UNIQUE (");
    for (i = 0; i < 5; i++)
        sl_strbuf_addf(&b, "%s\"%s\"", i ? ", " : "", col_name(cols, i));
    sl_strbuf_addf(&b, "))");
    return sl_strbuf_done(&b);
}

char *sl_sink_pg_sql_toast(const char *method)
{
    struct sl_strbuf b = {0};

    if (!method || (strcmp(method, "lz4") && strcmp(method, "pglz")))
        return NULL;
    sl_strbuf_addf(&b,
                   "DO $sl$BEGIN PERFORM set_config("
                   "'default_toast_compression', '%s', false); "
                   "EXCEPTION WHEN OTHERS THEN RAISE NOTICE "
                   "'default_toast_compression %s not available, the "
                   "server''s default stays: %%', SQLERRM; END$sl$",
                   method, method);
    return sl_strbuf_done(&b);
}

char *sl_sink_pg_sql_create_dead(const char *qtable)
{
    struct sl_strbuf b = {0};

    sl_strbuf_addf(
        &b,
        "CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, "
        "source text NOT NULL, topic text NOT NULL, "
        "partition integer NOT NULL, \"offset\" bigint NOT NULL, "
        "entry_id text NOT NULL DEFAULT '', key bytea, payload bytea, "
        "stage text NOT NULL, error text, sqlstate text, "
        "attempts integer NOT NULL DEFAULT 1, "
        "first_seen timestamptz NOT NULL DEFAULT now(), "
        "last_seen timestamptz NOT NULL DEFAULT now(), "
        "UNIQUE (source, topic, partition, \"offset\", entry_id))",
        qtable);
    return sl_strbuf_done(&b);
}

char *sl_sink_pg_sql_insert_dead(const char *qtable)
{
    struct sl_strbuf b = {0};

    sl_strbuf_addf(
        &b,
        "INSERT INTO %s AS d (source, topic, partition, \"offset\", "
        "entry_id, key, payload, stage, error, sqlstate, attempts) "
        "VALUES ($1::text, $2::text, $3::int4, $4::int8, $5::text, "
        "$6::bytea, $7::bytea, $8::text, $9::text, $10::text, $11::int4) "
        "ON CONFLICT (source, topic, partition, \"offset\", entry_id) "
        "DO UPDATE SET attempts = d.attempts + 1, last_seen = now(), "
        "error = EXCLUDED.error, sqlstate = EXCLUDED.sqlstate, "
        "stage = EXCLUDED.stage",
        qtable);
    return sl_strbuf_done(&b);
}
