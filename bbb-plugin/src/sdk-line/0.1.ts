/*
 * What differs in SDK 0.1.x (BigBlueButton 3.1 and later): an actions-bar
 * button's icon is BigBlueButton's icon name as a string.
 */
export function actionsBarIcon(name: string): string {
  return name;
}
