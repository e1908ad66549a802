/*
 * The plugin's production build: two bundles of the same sources, one per
 * line of BigBlueButton's plugin SDK (see README.md, "SDK lines").
 *
 *   dist/TolkInterpretation.js      SDK 0.1.x (BigBlueButton 3.1 and later)
 *   dist/TolkInterpretation-0.0.js  SDK 0.0.x (BigBlueButton 3.0), the npm alias
 *                                   bigbluebutton-html-plugin-sdk-0.0
 *
 * Tolk's page modules (../relay/web/*.js) are imported by relative path and
 * bundled as they are. The 0.1 bundle is type-checked; the 0.0 bundle only
 * transpiled (the same sources, against the older SDK's runtime).
 */
const path = require('path');

const here = (...p) => path.resolve(__dirname, ...p);

function bundle(line, filename, sdkPackage) {
  return {
    name: line,
    entry: here('src/index.tsx'),
    output: {
      path: here('dist'),
      filename,
      // BigBlueButton loads the bundle as a classic script: no chunks, no library.
      iife: true,
      clean: false,
    },
    devtool: false,
    performance: { hints: false },
    module: {
      rules: [
        {
          test: /\.tsx?$/,
          exclude: /node_modules/,
          use: { loader: 'ts-loader', options: {
            transpileOnly: line !== '0.1',
            onlyCompileBundledFiles: true,
            compilerOptions: { noEmit: false }, // tsconfig.json is also tsc --noEmit's
          } },
        },
        { test: /\.css$/, type: 'asset/source' },
      ],
    },
    resolve: {
      extensions: ['.tsx', '.ts', '.js'],
      alias: {
        'tolk-sdk-line$': here(`src/sdk-line/${line}.ts`),
        'bigbluebutton-html-plugin-sdk': here('node_modules', sdkPackage),
      },
    },
  };
}

module.exports = [
  bundle('0.1', 'TolkInterpretation.js', 'bigbluebutton-html-plugin-sdk'),
  bundle('0.0', 'TolkInterpretation-0.0.js', 'bigbluebutton-html-plugin-sdk-0.0'),
];
