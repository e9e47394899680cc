/* The attributes of a complete start tag, read in one pass over its bytes: the compiled core's version of
 * holdback._parse_attributes (the pure-Python function is the reference; tests/test_compiled_core.py compares
 * the two on generated tags, and the golden pages and real pages on both cores).
 *
 *     parse_attributes(tag: bytes, attribute: type[Attribute]) -> tuple[int, list[Attribute]]
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

static PyMethodDef methods[] = {
    {"parse_attributes", (PyCFunction)(void (*)(void))parse_attributes, METH_FASTCALL,
     "(end of the tag name, attributes) of a complete start tag, as holdback._parse_attributes reads them."},
    {"tag_rest_end", (PyCFunction)(void (*)(void))tag_rest_end, METH_FASTCALL,
     "Where scanner.TAG_REST matched at pos (within data[:endpos]) ends, -1 where it does not match."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_attrs", "The compiled core's attribute reader (see holdback._parse_attributes).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__attrs(void) { return PyModule_Create(&module_def); }
