// The panel's style sheet, bundled as text (webpack asset/source).
declare module '*.css' {
  const text: string;
  export default text;
}
