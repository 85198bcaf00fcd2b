// The SQL editor: CodeMirror 6 with Weir's keywords highlighted, completion of stream,
// view and column names, Ctrl/Cmd+Enter to run, and the error position underlined.

import { useEffect, useRef } from 'preact/hooks';
import { EditorState, Compartment, Prec, StateEffect, StateField, type Extension } from '@codemirror/state';
import {
  Decoration,
  EditorView,
  drawSelection,
  highlightActiveLine,
  highlightActiveLineGutter,
  keymap,
  lineNumbers,
  placeholder as placeholderExt,
  type DecorationSet,
} from '@codemirror/view';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from '@codemirror/language';
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap } from '@codemirror/autocomplete';
import { PostgreSQL, sql, SQLDialect, type SQLNamespace } from '@codemirror/lang-sql';

/** PostgreSQL's words (DataFusion follows PostgreSQL), plus those Weir adds. */
const WeirSQL = SQLDialect.define({
  ...PostgreSQL.spec,
  keywords:
    PostgreSQL.spec.keywords +
    ' stream streams emit changes final watermark flush materialized view views queries show describe explain' +
    ' tumble hop session partitions retention descriptor',
  types: PostgreSQL.spec.types + ' tinyint double string',
  caseInsensitiveIdentifiers: true,
});

/** Marks an error range; null clears it. */
const setError = StateEffect.define<{ from: number; to: number } | null>();

const errorMark = Decoration.mark({ class: 'cm-error-mark' });
const errorLine = Decoration.line({ class: 'cm-error-line' });

const errorField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(marks, tr) {
    for (const e of tr.effects) {
      if (e.is(setError)) {
        if (!e.value) return Decoration.none;
        const len = tr.state.doc.length;
        const from = Math.min(e.value.from, len);
        const to = Math.min(Math.max(e.value.to, from), len);
        const line = tr.state.doc.lineAt(from);
        const ranges = [errorLine.range(line.from)];
        if (to > from) ranges.push(errorMark.range(from, to));
        return Decoration.set(ranges, true);
      }
    }
    // Editing clears the mark: it described the text as it was.
    return tr.docChanged ? Decoration.none : marks;
  },
  provide: (f) => EditorView.decorations.from(f),
});

export interface EditorHandle {
  view: EditorView;
  /** Replaces the whole text (undoable) and puts the cursor at its end. */
  setText(text: string): void;
  /** Inserts text at the cursor. */
  insert(text: string): void;
  /** Underlines `from..to` and scrolls to it; null clears. */
  markError(range: { from: number; to: number } | null): void;
  focus(): void;
}

export interface EditorProps {
  initial: string;
  onChange?: (text: string) => void;
  /** Called with the text to run: the selection when there is one, else everything, and its offset. */
  onRun?: (text: string, offset: number) => void;
  schema?: SQLNamespace;
  handle?: (h: EditorHandle | null) => void;
  placeholder?: string;
  label: string;
  minLines?: number;
}

export function Editor({ initial, onChange, onRun, schema, handle, placeholder, label, minLines = 6 }: EditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const language = useRef(new Compartment());
  const callbacks = useRef({ onChange, onRun });
  callbacks.current = { onChange, onRun };

  useEffect(() => {
    const run = (v: EditorView) => {
      const sel = v.state.selection.main;
      const text = sel.empty ? v.state.doc.toString() : v.state.sliceDoc(sel.from, sel.to);
      callbacks.current.onRun?.(text, sel.empty ? 0 : sel.from);
      return true;
    };
    const extensions: Extension[] = [
      lineNumbers(),
      highlightActiveLineGutter(),
      history(),
      drawSelection(),
      indentOnInput(),
      bracketMatching(),
      closeBrackets(),
      autocompletion({ activateOnTyping: true }),
      highlightActiveLine(),
      syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
      Prec.highest(keymap.of([{ key: 'Mod-Enter', run, preventDefault: true }])),
      // No Tab binding: Tab keeps moving focus, so the page stays keyboard-usable.
      keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap]),
      language.current.of(sql({ dialect: WeirSQL, upperCaseKeywords: true, schema })),
      errorField,
      EditorView.lineWrapping,
      EditorView.contentAttributes.of({ 'aria-label': label }),
      EditorView.theme({ '.cm-content, .cm-gutter': { minHeight: `${minLines * 1.5}em` } }),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) callbacks.current.onChange?.(u.state.doc.toString());
      }),
    ];
    if (placeholder) extensions.push(placeholderExt(placeholder));
    const v = new EditorView({
      state: EditorState.create({ doc: initial, extensions }),
      parent: host.current!,
    });
    view.current = v;
    handle?.({
      view: v,
      setText(text) {
        v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: text }, selection: { anchor: text.length } });
      },
      insert(text) {
        v.dispatch(v.state.replaceSelection(text));
        v.focus();
      },
      markError(range) {
        const effects: StateEffect<unknown>[] = [setError.of(range)];
        if (range) effects.push(EditorView.scrollIntoView(Math.min(range.from, v.state.doc.length), { y: 'center' }));
        v.dispatch({ effects });
      },
      focus: () => v.focus(),
    });
    return () => {
      handle?.(null);
      v.destroy();
      view.current = null;
    };
    // The editor is created once; later props reach it through refs and the compartment.
  }, []);

  useEffect(() => {
    view.current?.dispatch({
      effects: language.current.reconfigure(sql({ dialect: WeirSQL, upperCaseKeywords: true, schema })),
    });
  }, [schema]);

  return <div class="editor" ref={host} />;
}
