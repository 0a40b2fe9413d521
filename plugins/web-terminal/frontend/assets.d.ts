/** CSS files are bundled as text (build.js: loader `.css: text`) and injected on mount. */
declare module '*.css' {
  const text: string;
  export default text;
}
