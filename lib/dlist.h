/*
 * Intrusive doubly linked lists, as macros so that they serve any struct:
 * a node carries its own link fields, named by the caller (so that one
 * node can be in two lists: next/prev and wnext/wprev), and a list is a
 * pointer to its first node, NULL when empty.  No allocation, no lock:
 * the list's owner serialises.
 */
#ifndef SL_DLIST_H
#define SL_DLIST_H

#include <stddef.h>

/* Put 'node' (in no list) first in list 'head'. */
#define SL_DLIST_PUSH(head, node, prev, next)                                  \
    do {                                                                       \
        (node)->prev = NULL;                                                   \
        (node)->next = (head);                                                 \
        if (head)                                                              \
            (head)->prev = (node);                                             \
        (head) = (node);                                                       \
    } while (0)

/* Take 'node' out of list 'head'; its link fields end NULL. */
#define SL_DLIST_UNLINK(head, node, prev, next)                                \
    do {                                                                       \
        if ((node)->prev)                                                      \
            (node)->prev->next = (node)->next;                                 \
        else                                                                   \
            (head) = (node)->next;                                             \
        if ((node)->next)                                                      \
            (node)->next->prev = (node)->prev;                                 \
        (node)->prev = (node)->next = NULL;                                    \
    } while (0)

#endif
