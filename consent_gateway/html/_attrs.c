/* The compiled core's C helpers: the hot byte loops its mypyc-compiled modules call. Each has a pure-Python
 * reference that the pure path runs (tests/test_compiled_core.py compares the two on generated cases, and the
 * golden pages and real pages on both cores). They read only within the bytes object they are given (NULs and
 * bytes past ASCII are bytes like any other) and are linear in its length.
 *
 *     parse_attributes(tag, attribute)   holdback._parse_attributes: a start tag's attributes
 *     tag_rest_end(data, pos, endpos)    scanner.TAG_REST: where a tag's rest ends
 *     candidate_starts(data, ...)        scanner.candidate_pattern: where candidate tokens start
 *
 * parse_attributes(tag: bytes, attribute: type[Attribute]) -> tuple[int, list[Attribute]]
 *
 * The same rules as holdback._NAME_END_RE and _ATTR_RE (the tokenizer's): the tag name runs to whitespace,
 * "/" or ">"; then attributes one after the other up to the closing ">" (the last byte, never read), each
 * after whitespace and "/": a name (its first byte may be "="; it runs to whitespace, "/", ">" or "="), then
 * maybe whitespace, "=", whitespace and a value: "double quoted", 'single quoted' (a quote opens a value only
 * when it is closed before the end), else unquoted up to whitespace or ">". Reading stops at the first byte
 * that starts no attribute (a ">" inside the tag).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* whitespace as HTML's tokenizer reads it: tab, line feed, form feed, carriage return, space */
static inline int is_ws(unsigned char c) { return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '; }

/* one Attribute (a NamedTuple: a tuple subclass) built as namedtuple's __new__ builds it */
static PyObject *make_attribute(PyTypeObject *type, const char *tag, Py_ssize_t name_start, Py_ssize_t name_end,
                                const char *value, Py_ssize_t value_len) {
    PyObject *name = PyBytes_FromStringAndSize(NULL, name_end - name_start);
    if (name == NULL) return NULL;
    char *out = PyBytes_AS_STRING(name);
    for (Py_ssize_t i = name_start; i < name_end; i++) {
        unsigned char c = (unsigned char)tag[i];
        out[i - name_start] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    PyObject *value_obj;
    if (value == NULL) {
        value_obj = Py_None;
        Py_INCREF(value_obj);
    } else {
        value_obj = PyBytes_FromStringAndSize(value, value_len);
        if (value_obj == NULL) {
            Py_DECREF(name);
            return NULL;
        }
    }
    PyObject *start = PyLong_FromSsize_t(name_start);
    PyObject *end = PyLong_FromSsize_t(name_end);
    if (start == NULL || end == NULL) {
        Py_XDECREF(start);
        Py_XDECREF(end);
        Py_DECREF(name);
        Py_DECREF(value_obj);
        return NULL;
    }
    PyObject *items = PyTuple_New(4); /* steals the references */
    if (items == NULL) {
        Py_DECREF(start);
        Py_DECREF(end);
        Py_DECREF(name);
        Py_DECREF(value_obj);
        return NULL;
    }
    PyTuple_SET_ITEM(items, 0, name);
    PyTuple_SET_ITEM(items, 1, start);
    PyTuple_SET_ITEM(items, 2, end);
    PyTuple_SET_ITEM(items, 3, value_obj);
    if (type == &PyTuple_Type) return items;
    PyObject *args = PyTuple_Pack(1, items);
    Py_DECREF(items);
    if (args == NULL) return NULL;
    PyObject *attribute = PyTuple_Type.tp_new(type, args, NULL);
    Py_DECREF(args);
    return attribute;
}

static PyObject *parse_attributes(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyType_Check(args[1]) ||
        !PyType_IsSubtype((PyTypeObject *)args[1], &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "parse_attributes(tag: bytes, attribute: a tuple type)");
        return NULL;
    }
    const char *tag = PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    PyTypeObject *type = (PyTypeObject *)args[1];

    /* <[^\t\n\f\r />]* at the start; 1 when the tag does not start with "<" */
    Py_ssize_t name_end = 1;
    if (n > 0 && tag[0] == '<') {
        name_end = 1;
        while (name_end < n) {
            unsigned char c = (unsigned char)tag[name_end];
            if (is_ws(c) || c == '/' || c == '>') break;
            name_end++;
        }
    }
    PyObject *attrs = PyList_New(0);
    if (attrs == NULL) return NULL;
    Py_ssize_t limit = n - 1; /* the closing ">" is never read */
    Py_ssize_t pos = name_end;
    while (pos < limit) {
        Py_ssize_t p = pos;
        while (p < limit && (is_ws((unsigned char)tag[p]) || tag[p] == '/')) p++;
        if (p >= limit || tag[p] == '>') break; /* no name here: the attributes end */
        Py_ssize_t name_start = p++;
        while (p < limit) {
            unsigned char c = (unsigned char)tag[p];
            if (is_ws(c) || c == '/' || c == '>' || c == '=') break;
            p++;
        }
        Py_ssize_t attr_name_end = p;
        const char *value = NULL;
        Py_ssize_t value_len = 0;
        Py_ssize_t q = p;
        while (q < limit && is_ws((unsigned char)tag[q])) q++;
        if (q < limit && tag[q] == '=') {
            q++;
            while (q < limit && is_ws((unsigned char)tag[q])) q++;
            Py_ssize_t closing = -1;
            if (q < limit && (tag[q] == '"' || tag[q] == '\'')) {
                const char *found = memchr(tag + q + 1, tag[q], (size_t)(limit - q - 1));
                if (found != NULL) closing = found - tag;
            }
            if (closing >= 0) {
                value = tag + q + 1;
                value_len = closing - q - 1;
                p = closing + 1;
            } else { /* unquoted, maybe empty; an unclosed quote is a byte of it */
                Py_ssize_t v = q;
                while (v < limit) {
                    unsigned char c = (unsigned char)tag[v];
                    if (is_ws(c) || c == '>') break;
                    v++;
                }
                value = tag + q;
                value_len = v - q;
                p = v;
            }
        }
        PyObject *attribute = make_attribute(type, tag, name_start, attr_name_end, value, value_len);
        if (attribute == NULL || PyList_Append(attrs, attribute) < 0) {
            Py_XDECREF(attribute);
            Py_DECREF(attrs);
            return NULL;
        }
        Py_DECREF(attribute);
        pos = p;
    }
    PyObject *end = PyLong_FromSsize_t(name_end);
    if (end == NULL) {
        Py_DECREF(attrs);
        return NULL;
    }
    PyObject *result = PyTuple_New(2);
    if (result == NULL) {
        Py_DECREF(end);
        Py_DECREF(attrs);
        return NULL;
    }
    PyTuple_SET_ITEM(result, 0, end);
    PyTuple_SET_ITEM(result, 1, attrs);
    return result;
}

/* tag_rest_end(data: bytes, pos: int, endpos: int) -> int: where scanner.TAG_REST matched at ``pos`` (within
 * data[:endpos]) ends, -1 where it does not match. The rest of a tag after its name: whitespace and "/",
 * attributes (a name, then maybe whitespace, "=", whitespace and a value: quoted, which must be closed, else
 * unquoted up to whitespace or ">"), then ">". A quoted value left open means more bytes are needed: -1. */
static PyObject *tag_rest_end(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 3 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "tag_rest_end(data: bytes, pos: int, endpos: int)");
        return NULL;
    }
    Py_ssize_t p = PyLong_AsSsize_t(args[1]);
    Py_ssize_t n = PyLong_AsSsize_t(args[2]);
    if ((p == -1 || n == -1) && PyErr_Occurred()) return NULL;
    const char *data = PyBytes_AS_STRING(args[0]);
    Py_ssize_t size = PyBytes_GET_SIZE(args[0]);
    if (n > size) n = size;
    if (p < 0) p = 0;
    for (;;) {
        if (p >= n) return PyLong_FromLong(-1);
        unsigned char c = (unsigned char)data[p];
        if (c == '>') return PyLong_FromSsize_t(p + 1);
        if (is_ws(c) || c == '/') {
            p++;
            continue;
        }
        /* an attribute name: its first byte may be "=" or a quote */
        p++;
        while (p < n) {
            c = (unsigned char)data[p];
            if (is_ws(c) || c == '/' || c == '>' || c == '=') break;
            p++;
        }
        Py_ssize_t q = p;
        while (q < n && is_ws((unsigned char)data[q])) q++;
        if (q >= n || data[q] != '=') continue; /* a bare name: whitespace after it is read next */
        q++;
        while (q < n && is_ws((unsigned char)data[q])) q++;
        if (q < n && (data[q] == '"' || data[q] == '\'')) {
            const char *found = memchr(data + q + 1, data[q], (size_t)(n - q - 1));
            if (found == NULL) return PyLong_FromLong(-1); /* an open quote: not complete here */
            p = (found - data) + 1;
            continue;
        }
        while (q < n) {
            c = (unsigned char)data[q];
            if (is_ws(c) || c == '>') break;
            q++;
        }
        p = q;
    }
}

/* candidate_starts(data: bytes, start_names: tuple[bytes, ...], end_names: tuple[bytes, ...],
 *                  conditional: tuple[tuple[bytes, bytes], ...]) -> list[int]
 *
 * Every offset of ``data`` where scanner.candidate_pattern() matches (any case), ascending: what the
 * hyperscan candidate expression reports with its start-of-match, found here with memchr for "<" (hyperscan's
 * start-of-match tracking made it the slowest part of that scan). At a "<":
 *   "<" name "[\t\n\f\r />]"           for a name of start_names;
 *   "</" name "[\t\n\f\r />]"          for a name of end_names;
 *   "<!", "<?", "</" + a non-letter;
 *   "<" name "[\t\n\f\r /]" then word, with no "<" (or no ">") between the delimiter and the word's end, for a
 *   (name, word) of conditional.
 * Names and words are given in lowercase ASCII; the data is folded to lowercase ASCII byte by byte (other
 * bytes, NULs and invalid UTF-8 included, compare as they are). Every pattern must match within data. Linear
 * in len(data): a name is read at most one byte past the longest name, and the next "<", ">" and word after a
 * conditional name are searched forward once and reused by the "<"s after it. */

#define CAND_MAX_NAMES 128
#define CAND_MAX_NAME_LEN 32
#define CAND_MAX_CONDITIONAL 16

typedef struct {
    const char *bytes;
    Py_ssize_t len;
} name_t;

/* the next "<" or ">" at or after some offset, remembered: a later query at or after that offset reuses it
 * while it lies at or after the query's start (the queries come in ascending order: linear in all) */
typedef struct {
    Py_ssize_t from;  /* the offset last searched from; -1 before the first search */
    Py_ssize_t found; /* the first occurrence at or after ``from``, or the data's length when there is none */
} next_t;

/* a word's first occurrence in [from, searched): only as far as a query needs it, and resumed from there */
typedef struct {
    Py_ssize_t from;     /* -1 before the first search */
    Py_ssize_t searched; /* where the search stopped: no occurrence lies within [from, searched) when found is -1 */
    Py_ssize_t found;    /* the first occurrence at or after ``from``, or -1 */
} word_memo_t;

static inline unsigned char lower_ascii(unsigned char c) { return (unsigned char)(c >= 'A' && c <= 'Z' ? c + 32 : c); }

static inline int is_letter(unsigned char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

static Py_ssize_t next_byte(next_t *memo, const char *data, Py_ssize_t n, Py_ssize_t start, char byte) {
    if (memo->from < 0 || start < memo->from || memo->found < start) {
        const char *hit = start < n ? memchr(data + start, byte, (size_t)(n - start)) : NULL;
        memo->from = start;
        memo->found = hit == NULL ? n : hit - data;
    }
    return memo->found;
}

/* whether the word (lowercase) occurs in data[start:limit], any case */
static int word_within(word_memo_t *memo, const char *data, Py_ssize_t start, Py_ssize_t limit,
                       const name_t *word) {
    if (memo->from < 0 || start < memo->from || (memo->found >= 0 && memo->found < start)) {
        memo->from = start; /* what is known does not cover this query: search afresh */
        memo->searched = start;
        memo->found = -1;
    }
    if (memo->found < 0) {
        /* none in [from, searched): resume where the last search stopped, re-reading the bytes an occurrence
         * cut there may start at (what lies before start is no longer asked about) */
        memo->from = start;
        Py_ssize_t j = memo->searched - word->len + 1;
        if (j < start) j = start;
        unsigned char first = (unsigned char)word->bytes[0];
        for (; j + word->len <= limit; j++) {
            if (lower_ascii((unsigned char)data[j]) != first) continue;
            Py_ssize_t t = 1;
            while (t < word->len && lower_ascii((unsigned char)data[j + t]) == (unsigned char)word->bytes[t]) t++;
            if (t == word->len) {
                memo->found = j;
                break;
            }
        }
        if (limit > memo->searched) memo->searched = limit;
    }
    return memo->found >= 0 && memo->found + word->len <= limit;
}

/* names from a tuple of lowercase bytes; -1 with an exception set when the tuple is not one */
static Py_ssize_t read_names(PyObject *tuple, name_t *names, Py_ssize_t max, const char *what) {
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) > max) {
        PyErr_Format(PyExc_TypeError, "candidate_starts: %s must be a tuple of at most %zd bytes", what, max);
        return -1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(tuple);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, i);
        if (!PyBytes_Check(item) || PyBytes_GET_SIZE(item) < 1 || PyBytes_GET_SIZE(item) > CAND_MAX_NAME_LEN) {
            PyErr_Format(PyExc_TypeError, "candidate_starts: %s must hold bytes of 1 to %d bytes", what,
                         CAND_MAX_NAME_LEN);
            return -1;
        }
        names[i].bytes = PyBytes_AS_STRING(item);
        names[i].len = PyBytes_GET_SIZE(item);
    }
    return count;
}

/* the index of the name data[start:end] folds to, or -1 */
static Py_ssize_t find_name(const char *data, Py_ssize_t start, Py_ssize_t end, const name_t *names,
                            Py_ssize_t count) {
    Py_ssize_t len = end - start;
    for (Py_ssize_t k = 0; k < count; k++) {
        if (names[k].len != len) continue;
        Py_ssize_t t = 0;
        while (t < len && lower_ascii((unsigned char)data[start + t]) == (unsigned char)names[k].bytes[t]) t++;
        if (t == len) return k;
    }
    return -1;
}

static PyObject *candidate_starts(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "candidate_starts(data: bytes, start_names: tuple[bytes, ...], "
                                         "end_names: tuple[bytes, ...], conditional: tuple[tuple[bytes, bytes], ...])");
        return NULL;
    }
    name_t starts[CAND_MAX_NAMES], ends[CAND_MAX_NAMES];
    name_t cond_names[CAND_MAX_CONDITIONAL], cond_words[CAND_MAX_CONDITIONAL];
    word_memo_t word_memo[CAND_MAX_CONDITIONAL];
    Py_ssize_t n_starts = read_names(args[1], starts, CAND_MAX_NAMES, "start_names");
    if (n_starts < 0) return NULL;
    Py_ssize_t n_ends = read_names(args[2], ends, CAND_MAX_NAMES, "end_names");
    if (n_ends < 0) return NULL;
    PyObject *cond = args[3];
    if (!PyTuple_Check(cond) || PyTuple_GET_SIZE(cond) > CAND_MAX_CONDITIONAL) {
        PyErr_SetString(PyExc_TypeError, "candidate_starts: conditional must be a short tuple of (name, word)");
        return NULL;
    }
    Py_ssize_t n_cond = PyTuple_GET_SIZE(cond);
    for (Py_ssize_t k = 0; k < n_cond; k++) {
        PyObject *pair = PyTuple_GET_ITEM(cond, k);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "candidate_starts: conditional must hold (name, word) pairs");
            return NULL;
        }
        PyObject *name = PyTuple_GET_ITEM(pair, 0), *word = PyTuple_GET_ITEM(pair, 1);
        if (!PyBytes_Check(name) || !PyBytes_Check(word) || PyBytes_GET_SIZE(name) < 1 ||
            PyBytes_GET_SIZE(word) < 1 || PyBytes_GET_SIZE(name) > CAND_MAX_NAME_LEN ||
            PyBytes_GET_SIZE(word) > CAND_MAX_NAME_LEN) {
            PyErr_SetString(PyExc_TypeError, "candidate_starts: conditional names and words are short bytes");
            return NULL;
        }
        cond_names[k].bytes = PyBytes_AS_STRING(name);
        cond_names[k].len = PyBytes_GET_SIZE(name);
        cond_words[k].bytes = PyBytes_AS_STRING(word);
        cond_words[k].len = PyBytes_GET_SIZE(word);
        word_memo[k].from = -1;
        word_memo[k].searched = 0;
        word_memo[k].found = -1;
    }
    Py_ssize_t longest = 0;
    for (Py_ssize_t k = 0; k < n_starts; k++) longest = starts[k].len > longest ? starts[k].len : longest;
    for (Py_ssize_t k = 0; k < n_ends; k++) longest = ends[k].len > longest ? ends[k].len : longest;
    for (Py_ssize_t k = 0; k < n_cond; k++) longest = cond_names[k].len > longest ? cond_names[k].len : longest;

    const char *data = PyBytes_AS_STRING(args[0]);
    Py_ssize_t n = PyBytes_GET_SIZE(args[0]);
    next_t lt_memo = {-1, 0}, gt_memo = {-1, 0};
    PyObject *found = PyList_New(0);
    if (found == NULL) return NULL;
    Py_ssize_t i = 0;
    while (i < n) {
        const char *hit = memchr(data + i, '<', (size_t)(n - i));
        if (hit == NULL) break;
        i = hit - data;
        int candidate = 0;
        if (i + 1 < n) {
            unsigned char c = (unsigned char)data[i + 1];
            int closing = c == '/';
            if (c == '!' || c == '?') {
                candidate = 1;
            } else if (closing && i + 2 < n && !is_letter((unsigned char)data[i + 2])) {
                candidate = 1;
            } else if (closing || is_letter(c)) {
                /* the name: up to a delimiter, read no further than one byte past the longest name */
                Py_ssize_t start = i + 1 + closing, end = start;
                while (end < n && end - start <= longest) {
                    unsigned char d = (unsigned char)data[end];
                    if (is_ws(d) || d == '/' || d == '>') break;
                    end++;
                }
                if (end < n && end > start && end - start <= longest) { /* a delimiter ends it, within data */
                    if (closing) {
                        candidate = find_name(data, start, end, ends, n_ends) >= 0;
                    } else if (find_name(data, start, end, starts, n_starts) >= 0) {
                        candidate = 1;
                    } else if (data[end] != '>') {
                        Py_ssize_t k = find_name(data, start, end, cond_names, n_cond);
                        if (k >= 0) {
                            Py_ssize_t after = end + 1;
                            Py_ssize_t lt = next_byte(&lt_memo, data, n, after, '<');
                            Py_ssize_t gt = next_byte(&gt_memo, data, n, after, '>');
                            Py_ssize_t limit = lt > gt ? lt : gt; /* [^<]* or [^>]* up to the word */
                            candidate = word_within(&word_memo[k], data, after, limit, &cond_words[k]);
                        }
                    }
                }
            }
        }
        if (candidate) {
            PyObject *offset = PyLong_FromSsize_t(i);
            if (offset == NULL || PyList_Append(found, offset) < 0) {
                Py_XDECREF(offset);
                Py_DECREF(found);
                return NULL;
            }
            Py_DECREF(offset);
        }
        i++;
    }
    return found;
}

static int is_alnum(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_name_end(unsigned char c) { return is_ws(c) || c == '/' || c == '>'; }

/* whether `word` (lowercase) occurs in data[lo:hi], in any case */
static int has_word(const char *data, Py_ssize_t lo, Py_ssize_t hi, const char *word, Py_ssize_t len) {
    for (Py_ssize_t p = lo; p + len <= hi; p++) {
        Py_ssize_t k = 0;
        while (k < len && (data[p + k] | 0x20) == word[k]) k++;
        if (k == len) return 1;
    }
    return 0;
}

/* reads_like(plain: bytes, data: bytes) -> bool: scanner.reads_like, in one call (see there): data differs from
 * plain in one run of letters and digits on both sides, not in a tag's name nor right after "<" or "</", with
 * no "&" in the five bytes before it and no conditional word (ping, refresh, image, background; any case)
 * within reach of it. */
static PyObject *reads_like(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "reads_like(plain: bytes, data: bytes)");
        return NULL;
    }
    const char *a = PyBytes_AS_STRING(args[0]);
    const char *b = PyBytes_AS_STRING(args[1]);
    Py_ssize_t na = PyBytes_GET_SIZE(args[0]), nb = PyBytes_GET_SIZE(args[1]);
    Py_ssize_t shorter = na < nb ? na : nb;
    Py_ssize_t prefix = 0, suffix = 0;
    while (prefix < shorter && a[prefix] == b[prefix]) prefix++;
    while (suffix < shorter - prefix && a[na - 1 - suffix] == b[nb - 1 - suffix]) suffix++;
    Py_ssize_t end_a = na - suffix, end_b = nb - suffix;
    for (Py_ssize_t p = prefix; p < end_a; p++)
        if (!is_alnum((unsigned char)a[p])) Py_RETURN_FALSE;
    for (Py_ssize_t p = prefix; p < end_b; p++)
        if (!is_alnum((unsigned char)b[p])) Py_RETURN_FALSE;
    /* in a tag's name: back from the change over name bytes to a "<" (or "</") */
    Py_ssize_t p = prefix;
    while (p > 0 && b[p - 1] != '<' && !is_name_end((unsigned char)b[p - 1])) p--;
    if (p > 0 && b[p - 1] == '<') Py_RETURN_FALSE;
    if (p > 1 && b[p - 1] == '/' && b[p - 2] == '<') Py_RETURN_FALSE;
    for (Py_ssize_t q = prefix > 5 ? prefix - 5 : 0; q < prefix; q++)
        if (b[q] == '&') Py_RETURN_FALSE;
    Py_ssize_t lo = prefix > 9 ? prefix - 9 : 0, hi = end_b + 9 < nb ? end_b + 9 : nb;
    if (has_word(b, lo, hi, "ping", 4) || has_word(b, lo, hi, "image", 5) || has_word(b, lo, hi, "refresh", 7)
        || has_word(b, lo, hi, "background", 10))
        Py_RETURN_FALSE;
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"parse_attributes", (PyCFunction)(void (*)(void))parse_attributes, METH_FASTCALL,
     "(end of the tag name, attributes) of a complete start tag, as holdback._parse_attributes reads them."},
    {"tag_rest_end", (PyCFunction)(void (*)(void))tag_rest_end, METH_FASTCALL,
     "Where scanner.TAG_REST matched at pos (within data[:endpos]) ends, -1 where it does not match."},
    {"candidate_starts", (PyCFunction)(void (*)(void))candidate_starts, METH_FASTCALL,
     "Every offset where scanner.candidate_pattern() matches (any case), ascending."},
    {"reads_like", (PyCFunction)(void (*)(void))reads_like, METH_FASTCALL,
     "Whether data reads as plain does, known from how they differ (see scanner.reads_like)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_attrs", "The compiled core's C helpers: attribute and tag readers, a candidate finder.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__attrs(void) { return PyModule_Create(&module_def); }
