package migrations_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

// catalogSQL describes everything in the omnibridge schema as sorted text lines
// free of OIDs: relations and partition bounds, columns, constraints, indexes,
// triggers, functions, sequences, comments, owners and privileges. Two
// databases with the same lines have the same schema.
const catalogSQL = `
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = 'omnibridge'),
rel AS (
    SELECT c.* FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)
)
SELECT line FROM (
    SELECT format('schema owner=%s acl=%s', pg_get_userbyid(n.nspowner), n.nspacl) AS line
    FROM pg_namespace n WHERE n.nspname = 'omnibridge'
  UNION ALL
    SELECT format('rel %s kind=%s persist=%s owner=%s bound=%s partkey=%s opts=%s acl=%s comment=%s',
        c.relname, c.relkind, c.relpersistence, pg_get_userbyid(c.relowner),
        pg_get_expr(c.relpartbound, c.oid), pg_get_partkeydef(c.oid), c.reloptions, c.relacl,
        obj_description(c.oid, 'pg_class'))
    FROM rel c
  UNION ALL
    SELECT format('col %s.%s #%s type=%s notnull=%s default=%s identity=%s generated=%s collation=%s acl=%s comment=%s',
        c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
        pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attcollation, a.attacl,
        col_description(c.oid, a.attnum))
    FROM rel c
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  UNION ALL
    SELECT format('con %s.%s type=%s def=%s', c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid))
    FROM pg_constraint k JOIN rel c ON c.oid = k.conrelid
  UNION ALL
    SELECT format('idx %s valid=%s', pg_get_indexdef(i.indexrelid), i.indisvalid)
    FROM pg_index i JOIN rel c ON c.oid = i.indrelid
  UNION ALL
    SELECT format('trg %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled)
    FROM pg_trigger t JOIN rel c ON c.oid = t.tgrelid
    WHERE NOT t.tgisinternal
  UNION ALL
    SELECT format('seq %s type=%s start=%s inc=%s min=%s max=%s cycle=%s',
        c.relname, format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcycle)
    FROM pg_sequence s JOIN rel c ON c.oid = s.seqrelid
  UNION ALL
    SELECT format('fn %s owner=%s acl=%s secdef=%s config=%s comment=%s',
        pg_get_functiondef(p.oid), pg_get_userbyid(p.proowner), p.proacl, p.prosecdef, p.proconfig,
        obj_description(p.oid, 'pg_proc'))
    FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM ns)
  UNION ALL
    SELECT format('type %s kind=%s', t.typname, t.typtype)
    FROM pg_type t WHERE t.typnamespace = (SELECT oid FROM ns) AND t.typtype NOT IN ('c', 'b')
) lines
ORDER BY line`

// catalog returns the catalog description of conn's omnibridge schema.
func catalog(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	return queryStrings(t, conn, catalogSQL)
}
