/*
 * What differs in SDK 0.0.x (BigBlueButton 3.0): an actions-bar button's
 * icon is an object, { iconName } (or { svgContent }), since SDK 0.0.7x.
 * The 0.0 bundle is built from the same sources with this file in place of
 * 0.1.ts (webpack.config.js).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function actionsBarIcon(name: string): any {
  return { iconName: name };
}
