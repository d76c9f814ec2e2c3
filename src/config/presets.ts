// Operator presets for modules: what a fresh Amsel installation runs with when the config file
// says nothing about a module. Modules read their own entry from `config.modules` and validate
// it with their own schema; these presets are merged under whatever the operator writes
// (see `mergeModulePresets`).
//
// A module entry is either a boolean (enable with the module's defaults / disable) or an
// object (enabled, with these settings).

export type ModuleSetting = boolean | Record<string, unknown>;
export type ModuleSettings = Record<string, ModuleSetting>;

export const MODULE_PRESETS = {
  // XEP-0313 Message Archive Management: keep a month of history for multi-device sync;
  // older messages are deleted (data minimisation, product brief).
  mam: { retentionDays: 30 },
  // XEP-0045 Multi-User Chat: any local account may create rooms; new rooms send the last
  // 25 messages as history on join.
  muc: { createRooms: 'local', historyLength: 25 },
  // XEP-0363 HTTP File Upload: 100 MiB per file, 3 GiB per account, files kept 30 days.
  upload: { maxFileBytes: 104_857_600, quotaBytes: 3_221_225_472, retentionDays: 30 },
  // XEP-0077 In-Band Registration: off. The service registers accounts through its web
  // form only (product brief: no in-band registration).
  register: false,
} as const satisfies ModuleSettings;

/**
 * Merges the operator's module entries over the presets, per module:
 * - absent: the preset;
 * - `false`: disabled, whatever the preset;
 * - `true`: enabled with the preset's settings if it has some (a preset `false` becomes `true`);
 * - an object: the preset's settings overridden key by key.
 */
export function mergeModulePresets(user: ModuleSettings, presets: ModuleSettings = MODULE_PRESETS): ModuleSettings {
  const out: ModuleSettings = {};
  for (const [name, preset] of Object.entries(presets)) {
    out[name] = typeof preset === 'object' ? { ...preset } : preset;
  }
  for (const [name, value] of Object.entries(user)) {
    const preset = presets[name];
    if (value === false) out[name] = false;
    else if (value === true) out[name] = typeof preset === 'object' ? { ...preset } : true;
    else out[name] = typeof preset === 'object' ? { ...preset, ...value } : { ...value };
  }
  return out;
}
