/** IANA time zones a customer may choose: those this runtime knows, plus UTC (which Intl's list leaves out). */
export const timeZoneChoices: readonly string[] = ['UTC', ...Intl.supportedValuesOf('timeZone').filter((tz) => tz !== 'UTC')];
