/*
 * PostgreSQL sink, batches: a transaction's rows with what came back for
 * it, and the FIFO lists (pending, in flight) the sink thread keeps them
 * in.  Plain data; no connection, no lock: one thread owns them.
 */
#include "sink_pg_int.h"

#include <stdlib.h>

struct sl_pgbatch *sl_pgbatch_new(enum sl_pgbatch_kind kind, size_t cap)
{
    struct sl_pgbatch *b = calloc(1, sizeof(*b));

    if (!b)
        return NULL;
    b->kind = kind;
    b->err_stmt = -1;
    if (cap) {
        b->rows = calloc(cap, sizeof(*b->rows));
        if (!b->rows) {
            free(b);
            return NULL;
        }
        b->cap = cap;
    }
    return b;
}

void sl_pgbatch_reset_result(struct sl_pgbatch *b)
{
    b->nstmt = b->got = b->expect_null = 0;
    b->err_stmt = -1;
    b->sqlstate[0] = b->errmsg[0] = '\0';
    b->affected = 0;
}

void sl_pgbatch_free(struct sl_pgbatch *b)
{
    size_t i;

    if (!b)
        return;
    for (i = 0; i < b->n; i++)
        sl_row_destroy(b->rows[i]);
    free(b->rows);
    free(b);
}

void sl_pgblist_push(struct sl_pgblist *l, struct sl_pgbatch *b)
{
    b->next = NULL;
    if (l->tail)
        l->tail->next = b;
    else
        l->head = b;
    l->tail = b;
    l->len++;
}

void sl_pgblist_push_front(struct sl_pgblist *l, struct sl_pgbatch *b)
{
    b->next = l->head;
    l->head = b;
    if (!l->tail)
        l->tail = b;
    l->len++;
}

struct sl_pgbatch *sl_pgblist_pop(struct sl_pgblist *l)
{
    struct sl_pgbatch *b = l->head;

    if (!b)
        return NULL;
    l->head = b->next;
    if (!l->head)
        l->tail = NULL;
    l->len--;
    b->next = NULL;
    return b;
}

size_t sl_pgbatch_dead_row(const struct sl_pgbatch *b, int stmt)
{
    int k = b->n_result ? 1 : 0;
    size_t r;

    for (r = 0; r < b->n; r++) {
        if (b->rows[r]->kind != SL_ROW_DEAD)
            continue;
        if (k == stmt)
            return r;
        k++;
    }
    return b->n;
}

void sl_pgbatch_move_rows(struct sl_pgbatch *b, struct sl_pgbatch *nb, int kind,
                          size_t from, size_t to)
{
    size_t r, k = 0, w = 0, idx = 0;

    for (r = 0; r < b->n; r++) {
        struct sl_row *row = b->rows[r];
        int match = kind < 0 || (int)row->kind == kind;

        if (match) {
            idx = k++;
            if (idx >= from && idx < to) {
                nb->rows[nb->n++] = row;
                continue;
            }
        }
        b->rows[w++] = row;
    }
    b->n = w;
}
